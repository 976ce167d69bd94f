"""Where a training step's time goes (``sepconv.benchmarks.training_attribution``): compiled steps and
PyTorch's profile events sorted into rows by hand-written examples, and one real profile of a tiny
network's step. No timing is asserted."""

from types import SimpleNamespace

import pytest

from sepconv.benchmarks import training_attribution as ta
from sepconv.training import tiny_mobilenet

CATEGORIES = {"features.1.conv": "depthwise", "features.1.bn": "norm", "features.1": "norm", "head.fc": "linear"}


@pytest.mark.parametrize("op_name, expected", [
    ("jit(loss)/jvp(features.1)/features.1.conv/jit(depthwise_by_shifts)/add", ("depthwise", "forward")),
    ("jit(loss)/transpose(jvp(features.1))/features.1.conv/jit(depthwise_by_shifts)/reduce", ("depthwise", "backward")),
    ("jit(loss)/jvp(features.1)/features.1.bn/sub", ("norm", "forward")),
    ("jit(loss)/jvp(features.1)/jit(clip)/max", ("norm", "forward")),  # the block's own operation: its activation
    ("jit(loss)/transpose(jvp(head))/head.fc/dot_general", ("linear", "backward")),
    ("jit(loss)/jvp()/add", ("other", "forward")),  # outside every module named
])
def test_op_category(op_name, expected):
    assert ta.op_category(op_name, CATEGORIES) == expected


def test_training_step_kinds_of_a_written_module():
    # the step's own op_name decides; a step without one takes its body's; parameter names are no operations
    hlo = """HloModule jit_loss

%fused_computation (param_0: f32[4,8]) -> f32[4,8] {
  %param_0 = f32[4,8]{1,0} parameter(0)
  %sub.1 = f32[4,8]{1,0} subtract(%param_0, %param_0), metadata={op_name="jit(loss)/jvp(features.1)/features.1.bn/sub"}
  ROOT %add.1 = f32[4,8]{1,0} add(%sub.1, %param_0), metadata={op_name="jit(loss)/jvp(features.1)/features.1.conv/jit(depthwise_by_shifts)/add"}
}

%fused_computation.1 (param_0.1: f32[4,8]) -> f32[4,8] {
  %param_0.1 = f32[4,8]{1,0} parameter(0)
  %m.1 = f32[4,8]{1,0} multiply(%param_0.1, %param_0.1), metadata={op_name="jit(loss)/transpose(jvp(features.1))/features.1.bn/mul"}
  ROOT %m.2 = f32[4,8]{1,0} multiply(%m.1, %param_0.1), metadata={op_name="jit(loss)/transpose(jvp(features.1))/features.1.bn/mul"}
}

ENTRY %main (x: f32[4,8]) -> f32[4,8] {
  %x = f32[4,8]{1,0} parameter(0), metadata={op_name="params['features'][1]['bn']['scale'].value"}
  %add_fusion = f32[4,8]{1,0} fusion(%x), kind=kLoop, calls=%fused_computation, metadata={op_name="jit(loss)/jvp(features.1)/features.1.conv/jit(depthwise_by_shifts)/add"}
  %multiply_fusion = f32[4,8]{1,0} fusion(%add_fusion), kind=kLoop, calls=%fused_computation.1
  %copy.2 = f32[4,8]{0,1} copy(%multiply_fusion)
  ROOT %dot.3 = f32[4,8]{1,0} dot(%copy.2, %x), metadata={op_name="params['head']['fc']['kernel'].value"}
}
"""
    assert ta.training_step_kinds(hlo, CATEGORIES) == {
        "add_fusion": "forward/depthwise", "multiply_fusion": "backward/norm", "copy.2": "unnamed/other",
        "dot.3": "unnamed/other"}


def test_module_categories_of_a_tiny_network():
    found = ta.module_categories(tiny_mobilenet(act="relu6"))
    kinds = sorted(set(found.values()))
    assert kinds == ["depthwise", "full", "linear", "norm", "pointwise"]
    assert all(found[path] == "norm" for path in found if path.endswith(".bn"))
    # each depthwise-separable block: one depthwise and one pointwise convolution
    assert sum(v == "depthwise" for v in found.values()) == sum(v == "pointwise" for v in found.values())


def _event(name, start, end, children=(), shapes=None):
    event = SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end), cpu_children=list(children),
                            input_shapes=shapes or [], cpu_parent=None)
    for child in event.cpu_children:
        child.cpu_parent = event
    return event


def test_parse_torch_events_by_hand():
    """Two runs of a step: a depthwise convolution forward (NCHW input, OIHW kernel of one input channel
    per group) and backward, a BatchNorm, a hardtanh backward, an addition; times in microseconds."""
    def run(offset):
        conv = _event("aten::conv2d", offset + 0, offset + 100,
                      [_event("aten::convolution", offset + 1, offset + 99, shapes=[[2, 8, 4, 4], [8, 1, 3, 3], []])])
        bn = _event("aten::batch_norm", offset + 100, offset + 150)
        add = _event("aten::add", offset + 150, offset + 160)
        conv_back = _event(ta.TORCH_BACKWARD + "ConvolutionBackward0", offset + 200, offset + 500,
                           [_event("ConvolutionBackward0", offset + 201, offset + 499, [
                               _event("aten::convolution_backward", offset + 202, offset + 498,
                                      shapes=[[2, 8, 4, 4], [2, 8, 4, 4], [8, 1, 3, 3]])])])
        act_back = _event(ta.TORCH_BACKWARD + "HardtanhBackward0", offset + 500, offset + 520)
        return _event(ta.TORCH_STEP, offset, offset + 600, [conv, bn, add, conv_back, act_back])

    steps = [run(0), run(1000)]
    events = [e for step in steps for e in [step, *step.cpu_children]]
    result = ta.parse_torch_events(events)
    assert result["runs"] == 2
    assert result["forward"]["depthwise"] == pytest.approx(100e-6)
    assert result["forward"]["norm"] == pytest.approx(50e-6)
    assert result["forward"]["other"] == pytest.approx(10e-6)
    assert result["backward"]["depthwise"] == pytest.approx(300e-6)
    assert result["backward"]["norm"] == pytest.approx(20e-6)
    assert result["unnamed"] == pytest.approx((600 - 480) * 1e-6)  # between the operators
    assert result["total"] == pytest.approx(600e-6)


def test_torch_event_kinds_and_refusals():
    pointwise = _event("aten::conv2d", 0, 1, [_event("aten::convolution", 0, 1, shapes=[[1, 8, 4, 4], [16, 8, 1, 1]])])
    assert ta.torch_event_kind(pointwise) == ("pointwise", "forward")
    assert ta.torch_event_kind(_event(ta.TORCH_BACKWARD + "AddmmBackward0", 0, 1)) == ("linear", "backward")
    assert ta.torch_event_kind(_event("aten::hardtanh_", 0, 1)) == ("norm", "forward")
    with pytest.raises(ValueError, match="calls no aten::convolution: profile with record_shapes"):
        ta.torch_event_kind(_event("aten::conv2d", 0, 1))
    with pytest.raises(ValueError, match="holds no 'sepconv_training_step' range"):
        ta.parse_torch_events([_event("aten::add", 0, 1)])


def test_a_tiny_network_s_step_profiled():
    """The profile of a real compiled step: every kind of layer the network has, in both directions, and
    nearly all of the time named."""
    result = ta.xla_training_times(batch=2, resolution=16, runs=2, model=tiny_mobilenet(act="relu6"))
    for direction in ta.DIRECTIONS:
        for row in ("depthwise", "pointwise", "norm"):
            assert result[direction][row] > 0, (direction, row)
    named = sum(sum(result[d].values()) for d in ta.DIRECTIONS)
    assert named + result["unnamed"] == pytest.approx(result["total"])
    assert result["unnamed"] < 0.25 * result["total"]
    assert sum(result["steps"].values()) > 10
