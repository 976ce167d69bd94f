"""Execute notebooks one by one in fresh kernels and print how long each takes (``make timings``).

Nothing is asserted: this is a measurement to read, not a test. ``--cells`` also lists the slowest
cells of each notebook. The targets the README states (every notebook under a minute, the whole book
under four) are read from this table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path, timeout: int) -> tuple[float, list[tuple[float, int]]]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    cells = []
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            client.execute_cell(cell, index)
            cells.append((time.perf_counter() - t, index))
    return time.perf_counter() - start, cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter and the landing page")
    parser.add_argument("--cells", type=int, default=0, help="also list the N slowest cells of each notebook")
    parser.add_argument("--timeout", type=int, default=1200)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "book" / "index.ipynb"]
    total = 0.0
    print(f"{'notebook':<44}{'seconds':>9}")
    for path in paths:
        seconds, cells = run(path, args.timeout)
        total += seconds
        print(f"{str(path.relative_to(ROOT)) if path.is_absolute() else str(path):<44}{seconds:>9.1f}", flush=True)
        for t, index in sorted(cells, reverse=True)[:args.cells]:
            print(f"{'':<6}cell {index:<4}{t:>8.1f}", flush=True)
    print(f"{'total':<44}{total:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
