"""Where one network's time goes, layer kind by layer kind, in ONNX Runtime and in our fastest JAX program.

- ``onnx_structure``: what ONNX Runtime runs of an exported graph: the graph's operators by type
  before and after the runtime's own graph optimizer (``optimized_graph``; the optimizer fuses
  activations into convolutions and puts the network in its blocked ``NCHWc`` layout, each
  ``ReorderInput``/``ReorderOutput`` a conversion into or out of it);
- ``onnx_export_comparison``: our export of a torchvision network (as exported, and as
  ``transforms.onnx_export.named_operators`` rewrites it) against torchvision's own export, timed
  on ONNX Runtime in interleaved rounds;
- ``onnx_kind_times``: ONNX Runtime's per-operator profile (``SessionOptions.enable_profiling``,
  parsed by ``parse_onnx_profile``) summed per layer kind;
- ``xla_kind_times``: the same breakdown of our fastest program (``JAX, inference`` of
  ``benchmarks.runtimes`` at batch 1), from XLA's own trace of it (``jax.profiler``): XLA CPU records
  each step of the compiled program it runs, and each layer's computation is compiled inside a named
  scope (``scoped_program``) that tells which kind of layer a step belongs to (``step_kinds``);
- ``layer_attribution``: the two side by side for one network.

Kinds are ``sepconv.kinds``' multiplying kinds (``depthwise``, ``pointwise``, ``full``, ``linear``,
``grouped``) read from each layer's shapes; ``other`` is the rest of the run: the whole run's time
less the layers'. In ONNX Runtime that is the operators that do not multiply (layout conversions,
squeeze-and-excitation's mean and product, the activations it did not fuse) and the session's own
overhead; in JAX the steps XLA did not fuse into a layer's (the padding a shifted depthwise layer
reads, activations left on their own, the residual additions, squeeze-and-excitation's mean and
product); the JAX total is the time inside the compiled program's steps. A bias or activation fused
into a layer's step counts as the layer's, on both sides. The per-kind times of a profile are taken
while profiling (ONNX Runtime: medians over its runs; XLA: means over its runs); the whole programs
are also timed unprofiled in interleaved rounds, the one comparison of speed.

Every result notes the machine's load (``os.getloadavg``) before and after it ran. Nothing here
asserts a speed.
"""

from __future__ import annotations

import collections
import json
import os
import re
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from ..kinds import LayerKind, classify, equation_kind
from .harness import SETTLE_S, interleaved, paired_comparison, time_ratios

__all__ = ["KINDS", "operator_counts", "optimized_graph", "onnx_structure", "onnx_operator_kind",
           "parse_onnx_profile", "onnx_kind_times", "layer_inputs", "scoped_program", "compiled_text", "step_texts",
           "step_scopes", "step_kinds",
           "product_kinds",
           "parse_xla_trace", "profiled_steps",
           "xla_kind_times", "layer_attribution",
           "onnx_export_comparison", "machine_load"]

#: The rows of an attribution, in order: the multiplying kinds, then everything else.
KINDS = ("depthwise", "pointwise", "full", "grouped", "linear", "other")

#: ONNX operators that are a matrix product (ONNX Runtime's fused forms included): ``linear``.
ONNX_PRODUCTS = frozenset({"Gemm", "MatMul", "FusedGemm", "FusedMatMul"})
#: ONNX operators that are a convolution (ONNX Runtime's fused and ``NCHWc`` forms report ``Conv`` or ``FusedConv``).
ONNX_CONVOLUTIONS = frozenset({"Conv", "FusedConv", "NchwcConv"})


def machine_load() -> list:
    """The 1, 5 and 15 minute load averages of the machine (``os.getloadavg``): other work beside a timing."""
    return [round(v, 2) for v in os.getloadavg()]


# ---------------------------------------------------------------------------------------------------
# The graph ONNX Runtime runs
# ---------------------------------------------------------------------------------------------------

def operator_counts(proto) -> dict:
    """``{op type: nodes}`` of an ONNX graph, most frequent first."""
    return dict(collections.Counter(node.op_type for node in proto.graph.node).most_common())


def optimized_graph(proto):
    """The graph ONNX Runtime's CPU provider runs for ``proto`` after its graph optimizer (all levels, as a
    session is created by default), read back from ``SessionOptions.optimized_model_filepath``. It holds
    this machine's choices (the ``NCHWc`` block size): count it, do not ship it."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.optimized_model_filepath = os.path.join(folder, "optimized.onnx")
        options.log_severity_level = 3  # the warning that such a file is machine-specific
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def onnx_structure(protos: dict) -> dict:
    """For each ``{label: ModelProto}``: ``{"exported": operator_counts, "optimized": operator_counts of
    optimized_graph, "nodes": [exported, optimized], "layout_conversions": ReorderInput + ReorderOutput
    nodes in the optimized graph}``."""
    out = {}
    for label, proto in protos.items():
        optimized = operator_counts(optimized_graph(proto))
        exported = operator_counts(proto)
        out[label] = {"exported": exported, "optimized": optimized,
                      "nodes": [sum(exported.values()), sum(optimized.values())],
                      "layout_conversions": optimized.get("ReorderInput", 0) + optimized.get("ReorderOutput", 0)}
    return out


# ---------------------------------------------------------------------------------------------------
# ONNX Runtime's profile
# ---------------------------------------------------------------------------------------------------

def onnx_operator_kind(op: str, input_shapes: list) -> str:
    """The layer kind of one ONNX Runtime operator from its type and input shapes (``args.input_type_shape``
    of its profile event): a matrix product is ``linear``; a convolution with input ``(N, C, H, W)`` and
    kernel ``(O, C / groups, K_h, K_w)`` is classified by ``kinds.classify`` (``groups = C / kernel[1]``;
    ONNX Runtime's blocked layout pads ``C`` and ``O`` alike, which keeps a depthwise layer depthwise);
    anything else is ``other``."""
    if op in ONNX_PRODUCTS:
        return LayerKind.LINEAR.value
    if op in ONNX_CONVOLUTIONS and len(input_shapes) >= 2 and len(input_shapes[0]) >= 3 and len(input_shapes[1]) >= 3:
        x, w = input_shapes[0], input_shapes[1]
        if w[1] < 1 or x[1] % w[1]:
            raise ValueError(f"a {op} with input {x} and kernel {w}: channels {x[1]} not a multiple of {w[1]}")
        return classify(tuple(w[2:]), x[1] // w[1], x[1], w[0]).value
    return "other"


def parse_onnx_profile(events, skip: int = 1) -> dict:
    """ONNX Runtime's profile (the JSON list ``end_profiling`` writes, or its path) summed per run:
    ``{"runs": n, "total": [seconds per run], "kinds": {kind: [seconds per run]}, "operators": {op: [seconds
    per run]}}`` over the ``model_run`` events after the first ``skip`` (warm-up). An operator's time is
    its ``*_kernel_time`` event's ``dur`` (microseconds); it belongs to the run whose span holds it. A
    run's ``other`` is its total less its multiplying operators' time: the other operators and the
    session's overhead."""
    if isinstance(events, (str, os.PathLike)):
        with open(events) as f:
            events = json.load(f)
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    runs = runs[skip:]
    if not runs:
        raise ValueError(f"the profile holds no model_run after the first {skip}: run the session more often")
    kinds = {kind: [0.0] * len(runs) for kind in KINDS}
    operators: dict = {}
    starts = [start for start, _ in runs]
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i < 0 or e["ts"] > runs[i][1]:
            continue  # a warm-up run's operator
        args = e["args"]
        shapes = [next(iter(s.values())) for s in args.get("input_type_shape", [])]
        seconds = e["dur"] * 1e-6
        kind = onnx_operator_kind(args["op_name"], shapes)
        kinds[kind][i] += seconds
        operators.setdefault(args["op_name"], [0.0] * len(runs))[i] += seconds
    total = [(end - start) * 1e-6 for start, end in runs]
    kinds["other"] = [t - sum(kinds[k][i] for k in KINDS if k != "other") for i, t in enumerate(total)]
    return {"runs": len(runs), "total": total, "kinds": kinds, "operators": operators}


def onnx_kind_times(proto, x, runs: int = 20, threads: int | None = None) -> dict:
    """Run ``proto`` on ONNX Runtime ``runs + 1`` times with profiling on (the first run a warm-up) and
    ``parse_onnx_profile`` the result; ``median``: per kind, the median over the runs (and ``total``)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(runs + 1):
            session.run(None, {name: np.asarray(x, np.float32)})
        profile = parse_onnx_profile(session.end_profiling())
    profile["median"] = {kind: float(np.median(t)) for kind, t in profile["kinds"].items()}
    profile["median"]["total"] = float(np.median(profile["total"]))
    return profile


# ---------------------------------------------------------------------------------------------------
# Our fastest JAX program, layer by layer
# ---------------------------------------------------------------------------------------------------

def _multiplies(eqn) -> bool:
    return eqn.primitive.name in ("conv_general_dilated", "dot_general")


def layer_inputs(fn, *args) -> list:
    """``[(equation, input, weight)]`` for every convolution and matrix product of ``fn(*args)``, in order,
    with the values they compute on (the program run once, eagerly, by ``transforms.rewrite``)."""
    from ..transforms.rewrite import rewrite_equations

    seen = []

    def record(eqn, x, w):
        seen.append((eqn, x, w))
        return [eqn.primitive.bind(x, w, **eqn.params)]

    rewrite_equations(fn, _multiplies, record)(*args)
    return seen


SCOPE = "sepconv_layer_"


def scoped_program(fn):
    """``fast_inference(fn)`` with each multiplying layer's rewritten computation (``fast_equation``; a
    matrix product as traced) inside ``jax.named_scope(SCOPE + kind)``: XLA keeps the scope in the
    ``op_name`` of every instruction it compiles from the layer, which is how ``xla_kind_times`` finds
    the layer kind of each step of the compiled program. The same function as ``fast_inference(fn)``."""
    from ..transforms.fast_inference import fast_equation
    from ..transforms.rewrite import rewrite_equations

    def scoped(eqn, x, w):
        with jax.named_scope(SCOPE + equation_kind(eqn).value):
            if eqn.primitive.name == "dot_general":
                return [eqn.primitive.bind(x, w, **eqn.params)]
            return fast_equation(eqn, x, w)

    return rewrite_equations(fn, _multiplies, scoped)


def compiled_text(program, *args) -> str:
    """The optimized HLO text of the jitted ``program`` at ``args``, with its own metadata (the ``op_name``
    that ``step_kinds`` reads). JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``) keys a
    program without its metadata, so it would hand back the executable of the same computation compiled
    earlier without the scopes (``fast_inference(fn)``'s): this one compilation keys the metadata too.
    Call it before the program's first run (which would otherwise fetch that executable and keep it)."""
    keyed = jax.config.jax_compilation_cache_include_metadata_in_key
    jax.config.update("jax_compilation_cache_include_metadata_in_key", True)
    try:
        return program.lower(*args).compile().as_text()
    finally:
        jax.config.update("jax_compilation_cache_include_metadata_in_key", keyed)


def step_texts(hlo: str) -> dict:
    """``{instruction name: text}`` for the steps of a compiled module's entry computation (its text,
    ``compiled.as_text()``; parameters and constants left out; ``compiled.entry_steps`` gives their opcodes,
    shapes and operands): each step's line followed by the lines of
    the computations it calls (a fusion's body, four calls deep), which hold the ``op_name`` metadata of
    the traced operations it computes."""
    computations, current = {}, None
    for line in hlo.splitlines():
        head = re.match(r"(?:ENTRY )?%(\S+) \(", line)
        if head and not line.startswith(" "):
            current = "ENTRY" if line.startswith("ENTRY") else head.group(1)
            computations[current] = []
        elif current is not None and line.startswith("  "):
            computations[current].append(line)

    def expanded(lines, depth=0):
        text = "\n".join(lines)
        if depth < 4:
            for callee in re.findall(r"(?:calls|to_apply|body|condition)=%([\w.-]+)", text):
                text += "\n" + expanded(computations.get(callee, []), depth + 1)
        return text

    steps = {}
    for line in computations.get("ENTRY", []):
        step = re.match(r"\s*(?:ROOT )?%(\S+) = ", line)
        if step and " parameter(" not in line and " constant(" not in line:
            steps[step.group(1)] = expanded([line])
    return steps


def step_scopes(hlo: str) -> dict:
    """``{instruction name: Counter({kind: mentions})}``: how often each layer kind's ``SCOPE`` is named in
    the ``op_name`` of a step of a compiled module's entry computation and of the computations it calls
    (``step_texts``). A step that computes parts of two layers (XLA fused them) names both."""
    return {name: collections.Counter(re.findall(SCOPE + r"([a-z]+)", text)) for name, text in step_texts(hlo).items()}


def step_kinds(hlo: str, products: dict | None = None) -> dict:
    """``{instruction name: kind}`` for the steps of a compiled module's entry computation (``step_texts``):
    a step's kind is the ``SCOPE`` kind named most often in the ``op_name`` of the step and of the
    computations it calls (a fusion's body), ``other`` where none is named (a layer's bias and activation
    fused into its step count as the layer's, as ONNX Runtime fuses them).

    XLA drops the metadata of some matrix products it rewrites (a one-row product becomes a ``dot`` with
    no ``op_name``): an unnamed ``dot`` or ``convolution`` step takes the kind ``products`` gives its
    output's ``(size, last dimension)`` (``product_kinds`` of the program's layers), where it gives one."""
    kinds_of, scopes = {}, step_scopes(hlo)
    for name, text in step_texts(hlo).items():
        found = scopes[name]
        kind = found.most_common(1)[0][0] if found else "other"
        product = re.match(r"\s*(?:ROOT )?%\S+ = \w+\[([\d,]*)\]\S* (?:dot|convolution)\(", text)
        if not found and product and products:
            shape = [int(d) for d in product.group(1).split(",") if d]
            kind = products.get((int(np.prod(shape)), shape[-1] if shape else 1), kind)
        kinds_of[name] = kind
    return kinds_of


def product_kinds(layers: list) -> dict:
    """``{(output size, last dimension): kind}`` of ``layer_inputs``' layers, for the shapes only one kind
    of layer produces (``step_kinds`` reads it)."""
    seen: dict = {}
    for eqn, _, _ in layers:
        shape = eqn.outvars[0].aval.shape
        seen.setdefault((int(np.prod(shape)), shape[-1]), set()).add(equation_kind(eqn).value)
    return {key: kinds.pop() for key, kinds in seen.items() if len(kinds) == 1}


def parse_xla_trace(path, kinds_of: dict, kinds=KINDS) -> dict:
    """Seconds per kind summed over an XLA CPU trace (``jax.profiler``'s ``.xplane.pb``): each event named
    after an entry step of ``kinds_of`` (``step_kinds``; XLA CPU records one per step it runs) adds its
    duration to the step's kind (one of ``kinds``); ``steps`` counts the events."""
    from jax.profiler import ProfileData

    seconds = dict.fromkeys(kinds, 0.0)
    steps = 0
    for plane in ProfileData.from_file(str(path)).planes:
        for line in plane.lines:
            for event in line.events:
                kind = kinds_of.get(event.name)
                if kind is not None:
                    seconds[kind] += event.duration_ns * 1e-9
                    steps += 1
    return {"seconds": seconds, "steps": steps}


def profiled_steps(program, args: tuple, kinds_of: dict, runs: int, kinds=KINDS) -> dict:
    """The jitted ``program`` run once, then ``runs`` times under ``jax.profiler``: ``parse_xla_trace`` of the
    trace with the steps' kinds ``kinds_of`` (seconds over all the runs)."""
    import glob

    jax.block_until_ready(program(*args))
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        try:
            for _ in range(runs):
                jax.block_until_ready(program(*args))
        finally:
            jax.profiler.stop_trace()
        (path,) = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
        return parse_xla_trace(path, kinds_of, kinds)


def xla_kind_times(fn, args: tuple, runs: int = 20) -> dict:
    """Our fastest program (``scoped_program`` of ``fn``, jitted) run ``runs`` times under ``jax.profiler``
    after a warm-up: per kind, the mean seconds per run its steps took (``parse_xla_trace``; ``other``:
    the steps outside every multiplying layer), their sum (``total``: the time inside steps, which
    leaves out dispatch and adds up steps XLA ran side by side), and the median wall time of an
    unprofiled run (``wall``, ``harness.time_call``)."""
    from .harness import time_call

    program = jax.jit(scoped_program(fn))
    kinds_of = step_kinds(compiled_text(program, *args), product_kinds(layer_inputs(fn, *args)))
    trace = profiled_steps(program, args, kinds_of, runs)
    wall = time_call(program, *args, warmup=1, repeats=runs).median_s
    per_run = {kind: t / runs for kind, t in trace["seconds"].items()}
    return {"runs": runs, "steps_per_run": trace["steps"] / runs,
            "median": {**per_run, "total": sum(per_run.values())}, "wall": wall,
            "step_kinds": dict(collections.Counter(kinds_of.values()))}


def _network(name: str, batch: int, resolution: int, seed: int = 0):
    from ..layers import randomize_batchnorm
    from ..models import build_model
    from ..transforms.batchnorm import fold_batchnorm

    folded = fold_batchnorm(randomize_batchnorm(build_model(name, resolution=resolution), seed=seed))
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(batch, resolution, resolution, 3)), jnp.float32)
    return folded, x


def layer_attribution(name: str, resolution: int = 224, rounds: int = 7, repeats: int = 10, runs: int = 20,
                      tflite=None, log=print) -> dict:
    """One network at batch 1, side by side: per layer kind, ONNX Runtime's time (``onnx_kind_times`` of our
    export, ``runs`` profiled runs) and our fastest JAX program's (``xla_kind_times``: ``fast_inference`` of
    the folded model, which at batch 1 is ``JAX, inference`` of ``benchmarks.runtimes``); the layers per kind
    (``layer_inputs``); both programs unprofiled in ``rounds`` interleaved rounds (``times``, with
    ``harness.SETTLE_S`` seconds' pause before each program; the ratio JAX /
    ONNX Runtime per round and the sign test's wording); the machine's load before and after.

    With ``tflite`` (the folder of ``tools/keras_to_tflite.py``'s models) LiteRT joins: keras.applications'
    network of the same name run by LiteRT/XNNPACK is timed in the same unprofiled rounds (``JAX, inference /
    LiteRT`` per round and its wording), and ``litert`` holds its operators timed one at a time
    (``litert_operators.litert_kind_times``, ``rounds`` rounds) with its operators per kind."""
    from ..interop import pure_module
    from ..transforms.fast_inference import fast_inference
    from ..transforms.onnx_export import export_onnx, onnx_session
    from .litert_operators import litert_kind_times
    from .runtimes import LITERT, _litert_program

    load = machine_load()
    folded, x = _network(name, 1, resolution)
    fn, state = pure_module(folded, flat=True)
    counts = collections.Counter(equation_kind(eqn).value for eqn, _, _ in layer_inputs(fn, state, x))
    proto = export_onnx(folded, x.shape, name)
    programs = {"ONNX Runtime": (onnx_session(proto)[1], (np.asarray(x),)),
                "JAX, inference": (jax.jit(fast_inference(fn)), (state, x))}
    litert_path = None if tflite is None else os.path.join(str(tflite), f"{name}_b1.tflite")
    if litert_path is not None:
        if not os.path.exists(litert_path):
            raise FileNotFoundError(f"no LiteRT model {litert_path}: convert it with tools/keras_to_tflite.py")
        programs.update(_litert_program(tflite, name, 1, np.asarray(x)))
    times = interleaved(programs, rounds, repeats, pause=SETTLE_S)
    comparison = paired_comparison(times["JAX, inference"], times["ONNX Runtime"], "JAX, inference", "ONNX Runtime")
    onnx_times = onnx_kind_times(proto, np.asarray(x), runs=runs)
    jax_times = xla_kind_times(fn, (state, x), runs=runs)
    row = {"model": name, "batch": 1, "resolution": resolution,
           "layers": {kind: counts.get(kind, 0) for kind in KINDS if kind != "other"},
           "onnx": {"runs": onnx_times["runs"], "median": onnx_times["median"],
                    "operators": {op: float(np.median(t)) for op, t in onnx_times["operators"].items()}},
           "jax": jax_times, "rounds": rounds, "pause": SETTLE_S, "times": times,
           "ratios": [j / o for j, o in zip(times["JAX, inference"], times["ONNX Runtime"])],
           "wording": comparison.wording(),
           "load": {"before": load, "after": machine_load()}}
    if litert_path is not None:
        litert = litert_kind_times(litert_path, rounds=rounds)
        litert["layers"] = {kind: sum(r["kind"] == kind for r in litert["operators"]) for kind in KINDS if kind != "other"}
        row["litert"] = litert
        row["litert_ratios"] = [j / t for j, t in zip(times["JAX, inference"], times[LITERT])]
        row["litert_wording"] = paired_comparison(times["JAX, inference"], times[LITERT], "JAX, inference",
                                                  LITERT).wording()
        row["load"]["after"] = machine_load()
    log(f"{name}: " + ", ".join(f"{k} {row['onnx']['median'][k] * 1e3:.2f} / {row['jax']['median'][k] * 1e3:.2f}"
                                for k in (*KINDS, "total")) + f" ms (ONNX Runtime / JAX); {row['wording']}")
    if "litert" in row:
        log(f"{name}, LiteRT one operator at a time: " + ", ".join(
            f"{k} {row['litert']['median'][k] * 1e3:.2f}" for k in (*KINDS, "total"))
            + f" ms (sum / whole {row['litert']['sum_over_whole']:.2f}); {row['litert_wording']}")
    return row


# ---------------------------------------------------------------------------------------------------
# Our export against torchvision's, on ONNX Runtime
# ---------------------------------------------------------------------------------------------------

def onnx_export_comparison(networks=("mobilenet_v3_large", "mobilenet_v2"), batch: int = 1, rounds: int = 9,
                           repeats: int = 20, log=print) -> dict:
    """Per torchvision network: ONNX Runtime running our export as ``jax2onnx`` writes it (``ours, as
    exported``), as ``named_operators`` rewrites it (``ours``, what ``export_onnx`` returns) and torchvision's
    own export (``torch.onnx.export``, opset 17), timed in ``rounds`` interleaved rounds (the median of
    ``repeats`` runs each, a ``harness.SETTLE_S`` pause before each session's); the two graphs' structure
    (``onnx_structure``); each round's ratios and the sign test's wording (``paired_comparison``). Needs
    PyTorch and torchvision (``benchmarks.runtimes``)."""
    import io

    import onnx

    from ..transforms.onnx_export import export_onnx, onnx_session
    from .runtimes import _torchvision

    found = _torchvision()
    if found is None:
        raise RuntimeError("torch and torchvision not installed: pip install torch torchvision")
    torch, torchvision = found
    rows = []
    for name in networks:
        load = machine_load()
        folded, x = _network(name, batch, 224)
        protos = {"ours, as exported": export_onnx(folded, x.shape, name, named=False),
                  "ours": export_onnx(folded, x.shape, name)}
        torch.manual_seed(0)
        reference = getattr(torchvision.models, name)().eval()
        x_nchw = np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))
        buffer = io.BytesIO()
        torch.onnx.export(reference, (torch.from_numpy(x_nchw),), buffer, dynamo=False, opset_version=17,
                          input_names=["x"])
        protos["torchvision"] = onnx.load_from_string(buffer.getvalue())
        programs = {label: (onnx_session(proto)[1], (x_nchw if label == "torchvision" else np.asarray(x),))
                    for label, proto in protos.items()}
        outputs = {label: f(*a) for label, (f, a) in programs.items()}
        times = interleaved(programs, rounds, repeats, pause=SETTLE_S)
        pairs = (("ours", "torchvision"), ("ours, as exported", "torchvision"), ("ours, as exported", "ours"))
        ratios, medians = time_ratios(times, pairs)
        wording = {f"{a} / {b}": paired_comparison(times[a], times[b], a, b).wording() for a, b in pairs}
        reference_out = outputs["ours, as exported"]
        row = {"model": name, "batch": batch, "rounds": rounds, "repeats": repeats, "times": times,
               "seconds": {label: float(np.median(t)) for label, t in times.items()},
               "ratios": ratios, "ratio": medians, "wording": wording,
               "structure": onnx_structure(protos),
               "named_error": float(np.max(np.abs(outputs["ours"] - reference_out)) / np.max(np.abs(reference_out))),
               "named_argmax_same": bool((outputs["ours"].argmax(-1) == reference_out.argmax(-1)).all()),
               "load": {"before": load, "after": machine_load()}}
        rows.append(row)
        log(f"{name} batch {batch}: " + "; ".join(f"{k} = {v:.2f} ({wording[k]})" for k, v in medians.items()))
    return {"rows": rows}

