"""Where a training step's time goes, layer kind by layer kind, forward and backward: our step against
PyTorch's, each from its own profiler.

- ``xla_training_times``: our step (``training_step``'s: ``jax.value_and_grad`` of the cross-entropy
  through ``transforms.fast_inference.fast_training``) compiled with every module of the network
  inside ``jax.named_scope(<its path>)`` (``counting.scopes.module_scopes``; ``transforms.rewrite``
  keeps each equation's scope), run under ``jax.profiler``: XLA CPU records each step of the compiled
  program it runs, and the ``op_name`` of the operations a step computes says which module they came
  from and whether they belong to the backward pass (``transpose(...)`` of JAX's derivative);
- ``torch_training_times``: PyTorch's eager step of torchvision's model (``training_step``'s) under
  ``torch.profiler``: each operator the step calls at its top level (``aten::conv2d``, ``aten::batch_norm``,
  ...) and each function of the autograd engine's backward pass (``ConvolutionBackward0``, ...);
- ``training_attribution``: the two side by side for one network and batch.

The rows (``TRAINING_KINDS``) are ``sepconv.kinds``' multiplying kinds read from each layer's shapes,
``norm`` (BatchNorm and the activation after it: ``ConvNormAct``'s own operations, PyTorch's
``batch_norm`` and ``hardtanh``), and ``other`` (residual additions, pooling, the loss, clearing the
gradients, layout copies); each in the two directions (``DIRECTIONS``). ``unnamed`` is the rest of
the step: XLA's steps that carry no ``op_name`` (copies and reductions XLA added), PyTorch's time
between its operators (Python and the engine's dispatch).

XLA fuses: a compiled step counts as the operation XLA names it after, the one its result comes from
(the arithmetic fused into it included: BatchNorm's normalization recomputed inside a depthwise
layer's kernel-gradient reduction counts as that layer's backward, the activation fused into the
padded copy a shifted depthwise layer reads as that layer's forward). PyTorch eager runs each
operator alone. The profiles' times are taken
while profiling (means over the runs); the one comparison of speed is ``training_step``'s unprofiled
interleaved rounds. Nothing here asserts a speed.
"""

from __future__ import annotations

import collections
import re

from ..kinds import LayerKind, module_kind
from .attribution import compiled_text, machine_load, onnx_operator_kind, profiled_steps, step_texts

__all__ = ["TRAINING_KINDS", "DIRECTIONS", "module_categories", "op_category", "training_step_kinds",
           "xla_training_times", "torch_event_kind", "parse_torch_events", "torch_training_times",
           "training_attribution"]

#: The rows of a training attribution: the multiplying kinds, BatchNorm with its activation, the rest.
TRAINING_KINDS = ("depthwise", "pointwise", "full", "grouped", "linear", "norm", "other")
#: The two passes of a step; ``unnamed`` (a third key) is what neither profile attributes.
DIRECTIONS = ("forward", "backward")

#: PyTorch operators and backward functions of BatchNorm and the activations after it (``norm``).
TORCH_NORM = frozenset({"aten::batch_norm", "aten::hardtanh_", "aten::hardtanh", "aten::relu_", "aten::relu",
                        "aten::hardswish_", "aten::hardswish", "aten::silu_", "aten::silu",
                        "NativeBatchNormBackward0", "HardtanhBackward0", "ReluBackward0", "HardswishBackward0",
                        "SiluBackward0"})
#: PyTorch operators and backward functions of the classifier's matrix product (``linear``).
TORCH_LINEAR = frozenset({"aten::linear", "AddmmBackward0", "TBackward0", "MmBackward0"})
#: The autograd engine's name for a backward function it runs: ``<prefix><function>``.
TORCH_BACKWARD = "autograd::engine::evaluate_function: "
#: The ``record_function`` range around one step.
TORCH_STEP = "sepconv_training_step"


# ---------------------------------------------------------------------------------------------------
# Our step, from XLA's trace
# ---------------------------------------------------------------------------------------------------

def module_categories(model) -> dict:
    """``{module path: row}`` for the modules of an NNX ``model`` whose own operations a row names: a
    ``Conv`` or ``Linear`` by its kind (``kinds.module_kind``), a ``BatchNorm`` or ``LayerNorm`` as
    ``norm``, and a ``ConvNormAct`` as ``norm`` too (its own operations, outside its convolution and
    norm, are the activation). Paths as ``module_scopes`` names them (``features.3.conv_dw.bn``)."""
    from flax import nnx

    from ..blocks import ConvNormAct

    found = {}
    for path, node in nnx.iter_graph(model):
        if not path:
            continue
        if isinstance(node, (nnx.Conv, nnx.Linear)):
            found[".".join(map(str, path))] = module_kind(node).value
        elif isinstance(node, (nnx.BatchNorm, nnx.LayerNorm, ConvNormAct)):
            found[".".join(map(str, path))] = "norm"
    return found


def op_category(op_name: str, categories: dict) -> tuple[str, str]:
    """``(row, direction)`` of one compiled operation from its ``op_name``
    (``jit(loss)/transpose(jvp(features.11))/features.11.conv_pwl/features.11.conv_pwl.bn/mul``): the row of
    the innermost module path in it that ``categories`` names (``module_categories``), ``other`` where
    none; ``backward`` when it sits under JAX's ``transpose(...)``, else ``forward``."""
    parts = op_name.split("/")[:-1]
    row = "other"
    for part in reversed(parts):
        path = re.sub(r"^(?:[\w]+\()+|\)+$", "", part)
        if path in categories:
            row = categories[path]
            break
    return row, ("backward" if "transpose(" in op_name else "forward")


def training_step_kinds(hlo: str, categories: dict) -> dict:
    """``{instruction name: "direction/row"}`` for the steps of a compiled training step (its text): a step
    takes the row and direction (``op_category``) of the operation XLA names it after, the ``op_name`` on
    the step's own line (a fusion's is that of the operation its result comes from: the kernel gradient's
    reduction, a padded copy, a BatchNorm subtraction); a step without one takes those most of the
    operations inside it have; a step with no ``op_name`` at all is ``unnamed/other``. Parameter names,
    which XLA also records as ``op_name``, are not operations and are skipped."""
    kinds_of = {}
    for name, text in step_texts(hlo).items():
        head, _, body = text.partition("\n")
        own = [op for op in re.findall(r'op_name="([^"]+)"', head) if op.startswith("jit(")]
        named = own[:1] or [op for op in re.findall(r'op_name="([^"]+)"', body) if op.startswith("jit(")]
        if not named:
            kinds_of[name] = "unnamed/other"
            continue
        row, direction = collections.Counter(op_category(op, categories) for op in named).most_common(1)[0][0]
        kinds_of[name] = f"{direction}/{row}"
    return kinds_of


def _keys():
    return [f"{d}/{row}" for d in (*DIRECTIONS, "unnamed") for row in TRAINING_KINDS]


def _table(seconds: dict, runs: int) -> dict:
    """``{"forward": {row: s}, "backward": {row: s}, "unnamed": s, "total": s}`` per run from ``direction/row`` sums."""
    out = {d: {row: seconds.get(f"{d}/{row}", 0.0) / runs for row in TRAINING_KINDS} for d in DIRECTIONS}
    out["unnamed"] = sum(seconds.get(f"unnamed/{row}", 0.0) for row in TRAINING_KINDS) / runs
    out["total"] = sum(seconds.values()) / runs
    return out


def xla_training_times(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, runs: int = 5,
                       model=None) -> dict:
    """Our training step of ``name`` (or of the NNX ``model`` given, built for ``resolution``;
    ``training_step.step_programs`` with every module in its named scope) run ``runs`` times under
    ``jax.profiler`` after a warm-up: seconds per run of its steps by direction and row
    (``training_step_kinds``), ``total`` the time inside steps; ``steps``: the compiled steps per row."""
    from .training_step import step_programs

    if model is None:
        from ..models import build_model

        model = build_model(name, resolution=resolution)
    program, args = step_programs(model, batch, resolution, scoped=True)["training step"]
    kinds_of = training_step_kinds(compiled_text(program, *args), module_categories(model))
    trace = profiled_steps(program, args, kinds_of, runs, _keys())
    return {"runs": runs, **_table(trace["seconds"], runs), "steps": dict(collections.Counter(kinds_of.values()))}


# ---------------------------------------------------------------------------------------------------
# PyTorch's step, from its profiler
# ---------------------------------------------------------------------------------------------------

def _descendant(event, name: str):
    stack = [event]
    while stack:
        e = stack.pop()
        if e.name == name:
            return e
        stack.extend(e.cpu_children)
    return None


def torch_event_kind(event) -> tuple[str, str]:
    """``(row, direction)`` of one top-level event of PyTorch's step: a backward function of the autograd
    engine (``TORCH_BACKWARD``) is ``backward``, an operator ``forward``; a convolution
    (``aten::conv2d``, ``ConvolutionBackward0``) takes the kind of its input and kernel shapes (the
    ``aten::convolution`` or ``aten::convolution_backward`` it calls, NCHW and OIHW as recorded with
    ``record_shapes``, ``attribution.onnx_operator_kind``), BatchNorm and activations are ``norm``
    (``TORCH_NORM``), the classifier ``linear`` (``TORCH_LINEAR``), anything else ``other``."""
    backward = event.name.startswith(TORCH_BACKWARD)
    op = event.name[len(TORCH_BACKWARD):] if backward else event.name
    direction = "backward" if backward else "forward"
    if op in ("aten::conv2d", "aten::convolution", "ConvolutionBackward0"):
        conv = _descendant(event, "aten::convolution_backward" if backward else "aten::convolution")
        if conv is None:
            raise ValueError(f"{event.name!r} calls no {'aten::convolution_backward' if backward else 'aten::convolution'}"
                             ": profile with record_shapes=True")
        shapes = conv.input_shapes
        x, w = (shapes[1], shapes[2]) if backward else (shapes[0], shapes[1])
        return onnx_operator_kind("Conv", [x, w]), direction
    if op in TORCH_NORM:
        return "norm", direction
    if op in TORCH_LINEAR:
        return LayerKind.LINEAR.value, direction
    return "other", direction


def parse_torch_events(events) -> dict:
    """PyTorch's profile (``profile.events()``: ``FunctionEvent``s with ``name``, ``cpu_parent``,
    ``cpu_children``, ``input_shapes``, ``time_range`` in microseconds) of runs each inside a
    ``record_function(TORCH_STEP)``, summed per run: each event directly under a step adds its duration to
    its row and direction (``torch_event_kind``); ``unnamed`` is the step's time outside them. Means
    over the runs, in seconds, as ``xla_training_times`` gives them."""
    steps = [e for e in events if e.name == TORCH_STEP]
    if not steps:
        raise ValueError(f"the profile holds no {TORCH_STEP!r} range: run each step inside record_function")
    seconds: dict = collections.defaultdict(float)
    for step in steps:
        inside = 0.0
        for child in step.cpu_children:
            row, direction = torch_event_kind(child)
            duration = (child.time_range.end - child.time_range.start) * 1e-6
            seconds[f"{direction}/{row}"] += duration
            inside += duration
        seconds["unnamed/other"] += (step.time_range.end - step.time_range.start) * 1e-6 - inside
    return {"runs": len(steps), **_table(seconds, len(steps))}


def torch_training_times(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, runs: int = 5) -> dict:
    """PyTorch's eager training step of torchvision's ``name`` (``training_step._torch_step``) run ``runs``
    times under ``torch.profiler`` (CPU, ``record_shapes``) after a warm-up, ``parse_torch_events``;
    ``None`` without PyTorch and torchvision."""
    from .training_step import _torch_step

    found = _torch_step(name, batch, resolution)
    if found is None:
        return None
    import torch

    step, args = found
    step(*args)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as profile:
        for _ in range(runs):
            with torch.profiler.record_function(TORCH_STEP):
                step(*args)
    return parse_torch_events(profile.events())


def training_attribution(name: str = "mobilenet_v2", batch: int = 16, resolution: int = 224, runs: int = 5,
                         log=print) -> dict:
    """One network's training step at ``batch``, side by side: per row and direction, our step's time
    (``xla_training_times``) and PyTorch's (``torch_training_times``, ``None`` without PyTorch); the
    allocator setting of the process (``allocator.state``) and the machine's load before and after."""
    from . import allocator

    load = machine_load()
    ours = xla_training_times(name, batch, resolution, runs)
    theirs = torch_training_times(name, batch, resolution, runs)
    row = {"model": name, "batch": batch, "resolution": resolution, "runs": runs, "jax": ours, "torch": theirs,
           "allocator": allocator.state(), "load": {"before": load, "after": machine_load()}}
    for d in DIRECTIONS:
        log(f"{name} batch {batch} {d}: " + ", ".join(
            f"{k} {ours[d][k] * 1e3 / batch:.2f}" + (f" / {theirs[d][k] * 1e3 / batch:.2f}" if theirs else "")
            for k in TRAINING_KINDS) + " ms per image (ours / PyTorch)")
    return row
