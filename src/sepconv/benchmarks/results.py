"""Where measurements are written and read, and the machine they name.

Results are saved as JSON under a folder named after the device. ``run_all`` writes to a folder of
the user's (``user_results_root()``, under ``$XDG_DATA_HOME``), never into the package: the
results the book shows ship in ``sepconv/data/benchmarks`` (``SHIPPED_RESULTS``), one folder per
device, and the chapters read them explicitly with ``load_results(device)``.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import jax

__all__ = ["device_info", "SHIPPED_RESULTS", "user_results_root", "results_dir", "stored_devices", "load_results",
           "save_result", "recording_folder", "machine_note"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict:
    """The device and the software versions a measurement was taken with."""
    import flax
    import jaxlib

    device = jax.devices()[0]
    return {"platform": device.platform, "device_kind": device.device_kind, "device_count": len(jax.devices()),
            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "python": platform.python_version(),
            "machine": platform.machine()}


#: The measurements shipped with the package, which the book's chapters show.
SHIPPED_RESULTS = Path(__file__).parent.parent / "data" / "benchmarks"


def user_results_root() -> Path:
    """Where ``python -m sepconv bench`` writes by default: ``$XDG_DATA_HOME/sepconv/benchmarks``
    (``~/.local/share/sepconv/benchmarks`` when the variable is unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sepconv" / "benchmarks"


def results_dir(info: dict | None = None, root: Path | None = None) -> Path:
    """``<root>/<platform>-<device kind>``; root defaults to ``user_results_root()``."""
    info = info or device_info()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{info['platform']}-{info['device_kind']}".lower()).strip("-")
    return (root or user_results_root()) / slug


def recording_folder(out: Path | None = None, info: dict | None = None) -> Path:
    """Where a tool that records the book's results writes (``tools/*_bench.py``): ``out``, else this device's
    folder of the shipped results (``results_dir`` under ``SHIPPED_RESULTS``); created."""
    folder = Path(out) if out else results_dir(info, root=SHIPPED_RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def machine_note(note: str, info: dict | None = None, **extra) -> dict:
    """The machine a recorded result was measured on, stored beside it: its CPU model and core count, what
    else it ran (``note``), and ``extra`` (the load averages a tool read)."""
    info = info or device_info()
    return {"cpu_model": info["cpu_model"], "cpu_count": info["cpu_count"], "note": note, **extra}


def save_result(out: Path, name: str, value) -> Path:
    """``value`` as ``<out>/<name>.json`` (indented, one trailing newline); the path written."""
    path = Path(out) / f"{name}.json"
    path.write_text(json.dumps(value, indent=1) + "\n")
    return path


def stored_devices(root: Path | None = None) -> list[str]:
    """The folders of stored results other than the CPU's (``cpu-*``): the accelerators measured."""
    root = Path(root) if root is not None else SHIPPED_RESULTS
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("cpu-")) if root.exists() else []


def load_results(device: str | None = None, root: Path | None = None) -> dict:
    """Stored results of one device folder (the only one, or the one named), as a dict of experiment -> data.

    ``root`` defaults to the shipped results (``SHIPPED_RESULTS``); pass ``user_results_root()``
    to read your own ``python -m sepconv bench`` run.
    """
    root = Path(root) if root is not None else SHIPPED_RESULTS
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    if device is not None:
        folders = [p for p in folders if p.name == device]
    if not folders:
        raise FileNotFoundError(f"no stored benchmark results{' for ' + device if device else ''} under {root}")
    folder = folders[0]
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
