"""Print how long counting and building each model takes (``make timings``, after the notebooks).

Nothing is asserted: this is a measurement to read, not a test. For every model of the registry:

* ``count``: the wall time of ``python -m sepconv count MODEL`` in a fresh process (the import of JAX
  and Flax included, as a user waits for it), best of ``--repeats``; with ``--training``, also
  ``count MODEL --training``;
* ``build``: ``build_model(MODEL)`` in one process, the first call and the best of ``--repeats``.

The README's targets (the CLI count of any model under 2 s, a runnable model built in under 1 s, on
2 cores) are read from this table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def cli_seconds(args: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sepconv", *args], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    from sepconv.models import MODEL_NAMES, build_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="default: every model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--training", action="store_true", help="also time `count MODEL --training`")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODEL_NAMES))
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; the models are {', '.join(MODEL_NAMES)}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    names = args.models or list(MODEL_NAMES)
    build_model("squeezenet1_1")  # JAX's first device transfer, which no model should be charged with
    header = f"{'model':<22}{'count (s)':>11}" + (f"{'--training':>12}" if args.training else "")
    print(header + f"{'build first':>13}{'build best':>12}")
    for name in names:
        row = f"{name:<22}{cli_seconds(['count', name], args.repeats):>11.2f}"
        if args.training:
            row += f"{cli_seconds(['count', name, '--training'], args.repeats):>12.2f}"
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            build_model(name)
            times.append(time.perf_counter() - start)
        print(row + f"{times[0]:>13.2f}{min(times):>12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
