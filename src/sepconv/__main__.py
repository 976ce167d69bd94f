"""Command line: ``python -m sepconv count MODEL ...``, ``validate`` and ``assign build|grade``.

``count`` builds the Flax model and counts it with the jaxpr counter:
``macs`` (per image), ``params`` in the convention of the published tables
(convolution and FC weights and biases, no BatchNorm parameters) and
``params_trainable`` (BatchNorm scale and shift included).
``validate`` recomputes every published table; its exit status is 1 if any
record is not ok.
"""

from __future__ import annotations

import argparse
import json
import sys

from .models import MODEL_NAMES


def _count(args) -> int:
    from .validation import count_model

    result = count_model(args.model, alpha=args.alpha, width=args.width, groups=args.groups,
                         resolution=args.resolution, classes=args.classes, convention=args.convention,
                         minimal=args.minimal)
    report = {
        "model": args.model, "alpha": args.alpha, "width": args.width, "resolution": args.resolution,
        "classes": args.classes, "convention": args.convention, "minimal": args.minimal, "macs": result.macs,
        "params": result.params_excluding_norm, "params_trainable": result.params, "activations": result.activations,
        "peak_activation_bytes": result.peak_activation_bytes, "complete": result.complete,
        "uncosted": result.uncosted,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>22}: {value:,}" if isinstance(value, int) and not isinstance(value, bool)
                  else f"{key:>22}: {value}")
    return 0 if result.complete else 1


def _validate(args) -> int:
    from .validation import validate

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
    from .assignments import build, grade

    if args.action == "build":
        student, grader = build(args.notebook, args.out)
        print(f"student notebook: {student}\nautograder: {grader}")
        return 0
    result = grade(args.notebook, args.autograder)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for t in result.tests:
            kind = "hidden " if t.hidden else ""
            print(f"{t.earned:g}/{t.points:g}  {kind}{t.name}" + (f"  ({t.error})" if t.error else ""))
        print(f"Score: {result.score:g} / {result.total:g}")
    return 0


def _bench(args) -> int:
    from .bench import run_all

    out = run_all(args.out, quick=args.quick, with_keras=not args.no_keras)
    print(f"results in {out}")
    return 0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepconv", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("count", help="count MACs and parameters of a model")
    c.add_argument("model", choices=MODEL_NAMES)
    c.add_argument("--alpha", type=_positive_float, default=1.0, help="MobileNet width multiplier")
    c.add_argument("--width", type=_positive_float, default=1.0, help="ShuffleNet v2 width (0.5, 1.0, 1.5, 2.0)")
    c.add_argument("--groups", type=int, default=3, help="ShuffleNet v1 groups (1, 2, 3, 4, 8)")
    c.add_argument("--resolution", type=int, default=224, help="input height and width in pixels (Xception: 299)")
    c.add_argument("--classes", type=int, default=1000, help="number of classes (TF-slim checkpoints use 1001)")
    c.add_argument("--convention", choices=("torchvision", "keras"), default="torchvision",
                   help="MobileNet v3 width rule: torchvision's or keras.applications'")
    c.add_argument("--minimal", action="store_true", help="MobileNet v3 minimalistic variant (TF-slim, Keras)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(run=_count)
    v = sub.add_parser("validate", help="check every published table")
    v.add_argument("--table", action="append", help="only this table (repeatable)")
    v.add_argument("--json", action="store_true", help="print every record as JSON")
    v.set_defaults(run=_validate)
    a = sub.add_parser("assign", help="build student versions of an assignment, or grade a submission")
    a.add_argument("action", choices=("build", "grade"))
    a.add_argument("notebook", help="build: the source notebook with solutions; grade: the submitted notebook")
    a.add_argument("--out", default="dist", help="build: folder for the student notebook and autograder file")
    a.add_argument("--autograder", help="grade: the .autograder.json file written by build")
    a.add_argument("--json", action="store_true", help="grade: print the result as JSON")
    a.set_defaults(run=_assign)
    b = sub.add_parser("bench", help="measure latency: layers, guidelines, models, ours vs keras.applications")
    b.add_argument("--out", help="folder for the JSON results (default: the package data folder for this device)")
    b.add_argument("--quick", action="store_true", help="a fast smoke run with few repetitions")
    b.add_argument("--no-keras", action="store_true", help="skip the keras.applications comparison")
    b.set_defaults(run=_bench)
    args = parser.parse_args(argv)
    if args.command == "assign" and args.action == "grade" and not args.autograder:
        parser.error("assign grade needs --autograder FILE")
    try:
        return args.run(args)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
