"""Measure where the time goes (``sepconv.benchmarks.attribution``) and store it beside the book's results.

    python tools/attribution_bench.py [--out DIR] [--networks NAME ...] [--export-networks NAME ...] [--tflite DIR]
                                      [--layers NAME] [--only onnx_export|attribution|layers]

writes ``onnx_export.json`` (our ONNX export against torchvision's on ONNX Runtime, interleaved rounds;
needs torch and torchvision; default MobileNetV3-Large and v2) and ``attribution.json`` (per layer kind,
ONNX Runtime's profile beside our fastest JAX program; default MobileNet v1, v2, V3-Large and
EfficientNet-B0; with ``--tflite DIR``, LiteRT's operators timed one at a time beside them,
``benchmarks.litert_operators``) and, with ``--tflite DIR``, ``litert_layers.json`` (each convolution of
``--layers`` (MobileNet v2) alone, LiteRT's operator against our program's layer in the same rounds)
into ``DIR`` (default: this device's folder of the shipped results,
``src/sepconv/data/benchmarks/<platform>-<kind>``). Each result notes the machine's load average.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sepconv.benchmarks.attribution import layer_attribution, machine_load, onnx_export_comparison
from sepconv.benchmarks.litert_operators import layer_comparison
from sepconv.benchmarks.results import machine_note, recording_folder, save_result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--networks", nargs="+", default=["mobilenet_v3_large", "mobilenet_v2", "mobilenet_v1",
                                                          "efficientnet_b0"])
    parser.add_argument("--export-networks", nargs="+", default=["mobilenet_v3_large", "mobilenet_v2"])
    parser.add_argument("--only", choices=["onnx_export", "attribution", "layers"], default=None)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tflite", type=Path, default=None,
                        help="the folder of tools/keras_to_tflite.py's models: LiteRT joins the attribution")
    parser.add_argument("--layers", default="mobilenet_v2",
                        help="with --tflite: the network whose convolutions are compared one by one")
    parser.add_argument("--note", default="", help="what else the machine ran (stored with the load average)")
    args = parser.parse_args()
    out = recording_folder(args.out)
    if args.only in (None, "onnx_export"):
        result = onnx_export_comparison(args.export_networks, rounds=args.rounds)
        print("wrote", save_result(out, "onnx_export", {**result, "machine": machine_note(args.note)}))
    if args.only in (None, "attribution"):
        rows = [layer_attribution(name, rounds=args.rounds, tflite=args.tflite) for name in args.networks]
        machine = machine_note(args.note, load_end=machine_load())
        print("wrote", save_result(out, "attribution", {"rows": rows, "machine": machine}))
    if args.only in (None, "layers") and args.tflite is not None:
        load = machine_load()
        result = layer_comparison(args.tflite / f"{args.layers}_b1.tflite", rounds=args.rounds)
        machine = machine_note(args.note, load={"before": load, "after": machine_load()})
        print("wrote", save_result(out, "litert_layers", {"model": args.layers, **result, "machine": machine}))


if __name__ == "__main__":
    main()
