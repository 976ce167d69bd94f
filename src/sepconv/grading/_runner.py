"""Phase 1, inside the sandbox: run a submission's code cells and write its answers as plain data.

This file is copied into the sandbox's private folder and run there by ``python -I _runner.py``; it
imports nothing from sepconv (the submission may have replaced anything). It reads ``cells.json`` (the
code cells, ``[[index, source], ...]``) and ``spec.json`` (``{"answers": [names], "calls": [expressions]}``),
executes the cells in one namespace, appending ``start I`` / ``end I`` to ``out/progress`` around each,
and after each cell writes every answer defined so far to ``out/answers.json`` (arrays to ``out/*.npy``).
At the end it evaluates each call expression (an answer that is a function, called with the arguments a
hidden test uses; ``student`` bound to the grader's, when the spec gives one) and writes ``done``. Nothing here is trusted by the grader: the submission runs in
this very process and may rewrite any of it. Phase 2 reads the files strictly (JSON, ``.npy`` without
pickles) and reports whatever is not plain data by name.
"""

import json
import os
import signal
import sys

OUT = "out"
ORIGINAL = os.getpid()


class _Shell:
    """What a notebook expects of ``get_ipython()``: shell commands and magics do nothing here."""

    def system(self, *args, **kwargs):
        return None

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, *args, **kwargs):
        return None

    def set_custom_exc(self, *args, **kwargs):
        return None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _plain(value, arrays, depth=0):
    """``value`` as JSON-ready plain data: exact built-in types, tagged Fraction, tuple, dict, numpy
    scalars and arrays (to ``.npy``); anything else ``{"$unsupported": type name}``."""
    import math
    from fractions import Fraction

    kind = type(value)
    if depth > 20:
        return {"$unsupported": "nesting deeper than 20"}
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind is Fraction:
        return {"$fraction": [value.numerator, value.denominator]}
    if kind in (list, tuple):
        items = [_plain(v, arrays, depth + 1) for v in value]
        return items if kind is list else {"$tuple": items}
    if kind is dict:
        return {"$dict": [[_plain(k, arrays, depth + 1), _plain(v, arrays, depth + 1)] for k, v in value.items()]}
    module = getattr(kind, "__module__", "") or ""
    if module == "numpy" or module.startswith(("jax", "jaxlib")):
        import numpy as np

        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return {"$scalar": value.dtype.str, "value": value.item() if value.dtype.kind != "f" or math.isfinite(value)
                    else repr(float(value))}
        try:
            array = np.asarray(value)
        except Exception:
            return {"$unsupported": kind.__name__}
        if array.dtype.kind not in "biufc" or array.size > 10_000_000:
            return {"$unsupported": f"{kind.__name__} of {array.dtype} x {array.size}"}
        name = f"a{len(arrays)}.npy"
        arrays[name] = array
        return {"$array": name}
    return {"$unsupported": kind.__name__}


def _write(path, data, arrays):
    for name, array in arrays.items():
        import numpy as np

        np.save(os.path.join(OUT, name), array, allow_pickle=False)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def _snapshot(ns, names):
    arrays = {}
    data = {name: _plain(ns[name], arrays) for name in names if name in ns}
    _write(os.path.join(OUT, "answers.json"), data, arrays)


def _progress(line):
    with open(os.path.join(OUT, "progress"), "a") as f:
        f.write(line + "\n")


def _end_others():
    """SIGKILL every other process this user may signal (only the sandbox's own, in its PID namespace or
    under its own user), three times over, so that a fork bomb or a background process ends with its cell."""
    import time

    for _ in range(3):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        _reap()
        time.sleep(0.01)


def _reap():
    """Collect the children that ended (a fork bomb's zombies count against the process limit)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except (ChildProcessError, OSError):
        pass


def _alarm(signum, frame):
    raise TimeoutError("call ran past its limit")


def main():
    with open("cells.json") as f:
        cells = json.load(f)
    with open("spec.json") as f:
        spec = json.load(f)
    names, calls = spec["answers"], spec["calls"]
    ns = {"__name__": "__main__", "get_ipython": lambda: _Shell()}
    for index, source in cells:
        _progress(f"start {index}")
        try:
            exec(compile(source, f"<cell {index}>", "exec"), ns)
        except BaseException:  # an answer that fails costs its own points only
            pass
        if os.getpid() != ORIGINAL:  # a child the submission forked: it has no answers to give
            os._exit(0)
        if spec.get("own_processes"):  # the sandbox's processes are only its own: end what the cell started
            _end_others()
        _reap()
        _progress(f"end {index}")
        try:
            _snapshot(ns, names)
        except BaseException:
            pass
    _progress("calls")
    if type(spec.get("student")) is str:  # a call may use the grader's `student` (never the notebook's)
        ns["student"] = spec["student"]
    signal.signal(signal.SIGALRM, _alarm)
    results, arrays = {}, {}
    for expression in calls:
        signal.alarm(int(spec.get("call_timeout", 10)))
        try:
            results[expression] = _plain(eval(expression, ns), arrays)
        except BaseException as error:
            results[expression] = {"$error": type(error).__name__}
        finally:
            signal.alarm(0)
        if os.getpid() != ORIGINAL:
            os._exit(0)
    arrays = {("c" + k): v for k, v in arrays.items()}
    results = json.loads(json.dumps(results).replace('{"$array": "a', '{"$array": "ca'))
    _write(os.path.join(OUT, "calls.json"), results, arrays)
    _progress("done")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
