"""Time our training step against PyTorch's, under both allocator settings, and store it beside the book's results.

    python tools/training_bench.py [--out DIR] [--batches 16 32] [--rounds 7] [--note TEXT]

Each (allocator setting, batch) runs ``sepconv.benchmarks.training_step`` (MobileNetV2, 224 px: forward
pass in training mode, our step, and PyTorch eager's step when torch and torchvision are installed, in
interleaved rounds) in a process of its own, one per setting of ``allocator.SETTINGS``: the default one,
one that keeps freed memory and one whose allocations ask for huge pages (glibc's tunables, read when a
process starts).
Then, in each setting at the first batch, ``sepconv.benchmarks.training_attribution`` (where each
step's time goes, layer kind by layer kind, forward and backward, from XLA's and PyTorch's profilers).
Writes ``training_comparison.json`` (every row, with the machine's load average before and after),
``training.json`` (the row at the first batch under the default setting: what chapter 9 reads as the
recorded step) and ``training_attribution.json`` into ``DIR`` (default: this device's folder of the
shipped results).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from sepconv.benchmarks.allocator import SETTINGS, environment
from sepconv.benchmarks.attribution import machine_load
from sepconv.benchmarks.results import machine_note, recording_folder, save_result

CHILD = """
import json, sys
from sepconv.benchmarks.training_step import training_step
print(json.dumps(training_step(batch=int(sys.argv[1]), rounds=int(sys.argv[2]), repeats=int(sys.argv[3]))))
"""
ATTRIBUTION = """
import json, sys
from sepconv.benchmarks.training_attribution import training_attribution
print(json.dumps(training_attribution(batch=int(sys.argv[1]), runs=int(sys.argv[2]), log=lambda _: None)))
"""


def measure(batch: int, rounds: int, repeats: int, setting: str, child: str = CHILD) -> dict:
    """One ``training_step`` row (or, with ``child=ATTRIBUTION``, one ``training_attribution`` row of
    ``rounds`` profiled runs), measured in a fresh process under the allocator ``setting``."""
    done = subprocess.run([sys.executable, "-c", child, str(batch), str(rounds), str(repeats)], capture_output=True,
                          text=True, env=environment(setting))
    if done.returncode != 0:
        sys.exit(f"training step at batch {batch} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--rounds", type=int, default=7)  # six rounds are the fewest a sign test can decide
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profiled-runs", type=int, default=5, help="runs of each profiled step")
    parser.add_argument("--note", default="", help="what else the machine ran (stored with the load average)")
    args = parser.parse_args()
    out = recording_folder(args.out)
    rows, load_before = [], machine_load()
    for setting in SETTINGS:
        for batch in args.batches:
            row = measure(batch, args.rounds, args.repeats, setting)
            rows.append(row)
            print(f"batch {batch}, {row['allocator']}: " + ", ".join(
                f"{key} {ratio:.2f}" for key, ratio in row["ratio"].items()), flush=True)
    machine = machine_note(args.note, load={"before": load_before, "after": machine_load()})
    print("wrote", save_result(out, "training_comparison", {"rows": rows, "machine": machine}))
    print("wrote", save_result(out, "training", rows[0]))
    profiles = [measure(args.batches[0], args.profiled_runs, 0, setting, ATTRIBUTION) for setting in SETTINGS]
    for row in profiles:
        print(f"profiled, {row['allocator']}: ours {row['jax']['total'] * 1e3:.0f} ms, PyTorch "
              f"{row['torch']['total'] * 1e3:.0f} ms per step" if row["torch"] else "(no PyTorch)", flush=True)
    print("wrote", save_result(out, "training_attribution", {"rows": profiles, "machine": machine_note(
        args.note, load={"before": load_before, "after": machine_load()})}))


if __name__ == "__main__":
    main()
