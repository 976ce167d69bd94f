"""Command line: ``python -m sepconv count MODEL ...`` and ``python -m sepconv validate``.

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

    result = count_model(args.model, alpha=args.alpha, width=args.width, resolution=args.resolution,
                         classes=args.classes)
    report = {
        "model": args.model, "alpha": args.alpha, "width": args.width, "resolution": args.resolution,
        "classes": args.classes, "macs": result.macs, "params": result.params_excluding_norm,
        "params_trainable": result.params, "activations": result.activations,
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
    c.add_argument("--resolution", type=int, default=224, help="input height and width in pixels")
    c.add_argument("--classes", type=int, default=1000, help="number of classes (TF-slim checkpoints use 1001)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(run=_count)
    v = sub.add_parser("validate", help="check every published table")
    v.add_argument("--table", action="append", help="only this table (repeatable)")
    v.add_argument("--json", action="store_true", help="print every record as JSON")
    v.set_defaults(run=_validate)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
