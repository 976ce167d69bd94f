"""Measure where the time goes (``sepconv.benchmarks.attribution``) and store it beside the book's results.

    python tools/attribution_bench.py [--out DIR] [--networks mobilenet_v3_large mobilenet_v2]

writes ``onnx_export.json`` (our ONNX export against torchvision's on ONNX Runtime, interleaved rounds;
needs torch and torchvision) and ``attribution.json`` (per layer kind, ONNX Runtime's profile beside our
fastest JAX program) into ``DIR`` (default: this device's folder of the shipped results,
``src/sepconv/data/benchmarks/<platform>-<kind>``). Each result notes the machine's load average.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sepconv.benchmarks import SHIPPED_RESULTS, device_info, results_dir
from sepconv.benchmarks.attribution import layer_attribution, machine_load, onnx_export_comparison
from sepconv.benchmarks.results import save_result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--networks", nargs="+", default=["mobilenet_v3_large", "mobilenet_v2"])
    parser.add_argument("--only", choices=["onnx_export", "attribution"], default=None)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--note", default="", help="what else the machine ran (stored with the load average)")
    args = parser.parse_args()
    info = device_info()
    out = args.out or results_dir(info, root=SHIPPED_RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    note = {"cpu_model": info["cpu_model"], "cpu_count": info["cpu_count"], "note": args.note}
    if args.only in (None, "onnx_export"):
        result = onnx_export_comparison(args.networks, rounds=args.rounds)
        print("wrote", save_result(out, "onnx_export", {**result, "machine": note}))
    if args.only in (None, "attribution"):
        rows = [layer_attribution(name, rounds=args.rounds) for name in args.networks]
        print("wrote", save_result(out, "attribution", {"rows": rows, "machine": {**note, "load_end": machine_load()}}))


if __name__ == "__main__":
    main()
