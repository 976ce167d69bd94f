"""Command line: ``python -m sepconv count MODEL ...``, ``validate``, ``bench`` and ``assign``.

``count`` traces a model from shapes (nothing is allocated) and reports ``macs`` (per batch),
``params`` in the convention of the published tables (convolution and FC weights and biases,
no normalization parameters) and ``params_trainable`` (normalization scale and shift included).
Each model's options come from the model registry: ``python -m sepconv count MODEL --help``
lists them. ``validate`` recomputes every published table; its exit status is 1 if any record
is not ok.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import json
import os
import re
import sys

if __name__ == "__main__":
    # Until a command turns out not to be short-lived (``main``), the cyclic garbage collector is off:
    # importing JAX and Flax and tracing a large model create millions of objects and hardly any
    # cycles, and collecting them as they accumulate costs a sixth of a ``count``.
    gc.disable()

from .models import model_entry, model_names


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message``; an unknown choice (a
    model's name, a command) suggests the closest known ones."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_did_you_mean(message)}\n")


def _did_you_mean(message: str) -> str:
    """argparse's ``invalid choice: 'x' (choose from a, b, ...)`` with ``did you mean ...?`` added."""
    match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not match:
        return message
    choices = [c.strip().strip("'") for c in match.group(2).split(",")]
    close = suggestions(match.group(1), choices)
    if not close:
        return message
    return message.replace(f"invalid choice: '{match.group(1)}'",
                           f"invalid choice: '{match.group(1)}' (did you mean {' or '.join(close)}?)", 1)


def suggestions(name: str, choices) -> list:
    """The known names closest to ``name`` (at most three): close spellings, or names it begins."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    starts = [c for c in choices if name and c.startswith(name) and c not in close]
    return (close + starts)[:3]


def _option_type(option):
    def parse(text: str):
        try:
            value = option.type(text) if option.type is not bool else text
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {option.describe_range()}, got {text!r}") from None
        try:
            return option.check(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {option.describe_range()}, got {text!r}") from None
    return parse


def _add_model_options(parser, entry) -> None:
    for option in entry.options:
        flag = "--" + option.name
        if option.type is bool:
            parser.add_argument(flag, action="store_true", help=option.help)
        else:
            parser.add_argument(flag, type=_option_type(option), default=option.default,
                                metavar=option.name.upper(),
                                help=f"{option.help}; {option.describe_range()} (default {option.default})")


def _count(args) -> int:
    from .counting import report_text
    from .models import count_model

    entry = model_entry(args.model)
    options = {o.name: getattr(args, o.name) for o in entry.options}
    result = count_model(args.model, batch=args.batch, training=args.training, **options)
    report = {"model": args.model, **options, "batch": args.batch, "macs": result.macs,
              "params": result.params_excluding_norm, "params_trainable": result.params_trainable,
              "activations": result.activations, "peak_activation_bytes": result.peak_activation_bytes,
              "elementwise_muls": result.elementwise_muls, "elementwise_adds": result.elementwise_adds,
              "complete": result.complete, "uncosted": result.uncosted}
    if args.training:
        report["training"] = result.macs_by_role()
    if args.format == "csv":
        sys.stdout.write(result.to_csv())
    elif args.format == "json":
        if args.per_layer:
            report["layers"] = result.layers()
        print(json.dumps(report, indent=2))
    else:
        print(report_text(report, result.layers() if args.per_layer else None))
    return 0 if result.complete else 1


def _validate(args) -> int:
    from .published import table_names
    from .validation import validate

    unknown = [t for t in args.table or () if t not in table_names()]
    if unknown:
        raise ValueError(f"unknown published table {unknown[0]!r}; known: {', '.join(table_names())}")
    records = validate(args.table or None)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        for r in records:
            status = "ok" if r.ok else "FAIL"
            known = "" if r.agrees else " (known disagreement)"
            print(f"{status:>4}  {r.table:<26} {r.row:<26} {r.quantity:<16} published {r.published:>8} {r.unit}"
                  f"  computed {r.computed_in_unit:>9} [{r.rule}]{known}")
        print(f"{sum(r.ok for r in records)} ok, {sum(not r.ok for r in records)} failed")
    return 0 if all(r.ok for r in records) else 1


def _assign(args) -> int:
    from .assignments import main as assign_main

    return assign_main(args)


def _bench(args) -> int:
    from pathlib import Path

    from .benchmarks.run import run_all

    if args.tflite and not Path(args.tflite).is_dir():
        raise FileNotFoundError(f"--tflite {args.tflite}: no such folder (write it with tools/keras_to_tflite.py)")

    if args.out is not None:
        _check_out_folder(args.out)
    only = None
    if args.only is not None:
        only = tuple(name.strip() for name in args.only.split(","))
        if not all(only):
            from .benchmarks.run import EXPERIMENTS

            raise ValueError(f"--only {args.only!r} names no experiment{' in one of its places' if any(only) else ''}; "
                             f"the experiments are {', '.join(EXPERIMENTS)}")
    if args.device is None and not args.no_runtimes and (only is None or "runtimes" in only):
        from .benchmarks.runtimes import one_cpu_device_per_core

        one_cpu_device_per_core()  # before anything starts JAX: our program can then split a batch over the cores
    out = run_all(args.out, quick=args.quick, with_keras=not args.no_keras, with_runtimes=not args.no_runtimes,
                  tflite=args.tflite, only=only, device=args.device)
    print(f"results in {out}")
    return 0


def _check_out_folder(text: str) -> None:
    """``bench --out``: a folder that exists or can be made, not a file nor below one."""
    from pathlib import Path

    if not text.strip():
        raise ValueError(f"--out {text!r} names no folder")
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {text}: is a file, not a folder")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {text}: {parent} is a file, so no folder can be made below it")


def _add_assign_arguments(parser) -> None:
    """The ``python -m sepconv assign`` options (here, so that other commands need not import nbformat)."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="otter assign a master notebook: student notebook and autograder zip")
    b.add_argument("master", help="the master notebook (book/assignments/NAME.ipynb)")
    b.add_argument("--out", default="dist", help="folder to write (default dist/; replaced)")
    g = actions.add_parser("grade", help="grade a notebook, or every notebook of a folder: the submission in a "
                                         "sandbox, the hidden tests in a clean process on its answers")
    g.add_argument("submission", help="the student's notebook, or a folder of notebooks (one table row each)")
    g.add_argument("--autograder", required=True, help="the autograder .zip written by build")
    g.add_argument("--cell-timeout", type=float, default=60, help="seconds a cell may run (default 60)")
    g.add_argument("--timeout", type=float, default=1200, help="seconds one submission may run in all (default 1200)")
    g.add_argument("--jobs", type=int, default=1, help="submissions of a folder graded at once (default 1)")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--roster", help="CSV with the columns file,student: the student each notebook is graded for "
                                    "(per-student variants; default: the notebook's file name without .ipynb)")
    c = actions.add_parser("check", help="prove an assignment grades right (what CI runs)")
    c.add_argument("master", nargs="+", help="master notebooks")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m sepconv", description=__doc__.split("\n\n")[0])
    from . import __version__

    top.add_argument("--version", action="version", version=f"sepconv {__version__}")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("count", help="count MACs and parameters of a model (from shapes)",
                       description="Count a model of the registry; `count MODEL --help` lists its options.")
    models = c.add_subparsers(dest="model", required=True, metavar="MODEL", parser_class=_Parser)
    for name in model_names():
        entry = model_entry(name)
        m = models.add_parser(name, help=entry.summary, description=f"{entry.summary}. {entry.reference}".strip())
        _add_model_options(m, entry)
        m.add_argument("--batch", type=_option_type(_BATCH), default=1, help="images per batch (default 1)")
        m.add_argument("--training", action="store_true",
                       help="count one training step's gradient: forward, input-gradient and weight-gradient MACs")
        m.add_argument("--per-layer", action="store_true", help="also list the MACs of every layer")
        m.add_argument("--format", choices=("text", "json", "csv"), default="text",
                       help="text (default), json, or csv (every costed operation)")
        m.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
        m.set_defaults(run=_count, short_lived=True)
    v = sub.add_parser("validate", help="check every published table")
    v.add_argument("--table", action="append", help="only this table (repeatable)")
    v.add_argument("--json", action="store_true", help="print every record as JSON")
    v.set_defaults(run=_validate)
    a = sub.add_parser("assign", help="build, grade or check the course's assignments (otter-grader)")
    _add_assign_arguments(a)
    a.set_defaults(run=_assign)
    b = sub.add_parser("bench", help="measure latency: layers, guidelines, models, ours vs keras.applications and other runtimes")
    b.add_argument("--out", help="folder for the JSON results (default: a folder for this device under "
                                 "$XDG_DATA_HOME/sepconv/benchmarks, never the shipped results)")
    b.add_argument("--quick", action="store_true", help="a fast smoke run with few repetitions (skips models)")
    from .benchmarks.run import EXPERIMENTS

    b.add_argument("--only", metavar="LIST", help="comma-separated experiments to run, of " + ", ".join(EXPERIMENTS))
    b.add_argument("--no-keras", action="store_true", help="skip the keras.applications comparison")
    b.add_argument("--no-runtimes", action="store_true",
                   help="skip the runtime comparison (ONNX Runtime; PyTorch when installed)")
    b.add_argument("--tflite", metavar="DIR", help="folder of LiteRT models written by tools/keras_to_tflite.py "
                                                   "(times LiteRT with XNNPACK; needs ai-edge-litert)")
    b.add_argument("--device", choices=("gpu", "tpu", "cpu"),
                   help="run the accelerator experiments of chapters 7, 8 and 9 on this JAX device instead "
                        "(about 5 minutes on one GPU; with --quick, tiny sizes: a dry run); --only then names "
                        "experiments of sepconv.benchmarks.device.DEVICE_EXPERIMENTS")
    b.set_defaults(run=_bench)
    return top


from .models.registry import BATCH as _BATCH  # noqa: E402


def main(argv: list[str] | None = None, *, process: bool = False) -> int:
    """Run a command. With ``process`` (the console entry point: the process is the command's), a
    short-lived command (``count``) runs without the cyclic garbage collector and ends the process
    once its output is flushed (``_exit_skipping_teardown``); any other turns the collector on."""
    p = parser()
    args, unknown = p.parse_known_args(argv)
    short_lived = process and getattr(args, "short_lived", False)
    if not short_lived:
        gc.enable()
    if unknown:
        if args.command == "count":
            entry = model_entry(args.model)
            flag = next((u for u in unknown if u.startswith("-")), unknown[0])
            names = ", ".join("--" + o.name for o in entry.options)
            p.exit(2, f"python -m sepconv count {args.model}: error: {args.model} takes no option "
                      f"{flag.split('=')[0]}; its options are {names} (see --help)\n")
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code = args.run(args)
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError, RuntimeError) as error:
        p.exit(2, f"python -m sepconv {args.command}: error: {error}\n")
    if short_lived:
        _exit_skipping_teardown(code)
    return code


def _exit_skipping_teardown(code: int) -> None:
    """End the process as soon as its output is flushed, without the interpreter's teardown: freeing
    the objects of JAX, Flax and XLA one by one takes about half a second, which the operating system
    does at once. Only for commands that hold nothing else to close (``count``)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader (``| head``) has gone: nothing more can be written
        code = code or 1
    os._exit(code)


def console() -> None:
    """The ``sepconv`` command and ``python -m sepconv``."""
    gc.disable()  # as for ``python -m sepconv`` above (the imports have run already)
    sys.exit(main(process=True))


if __name__ == "__main__":
    console()
