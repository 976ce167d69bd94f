"""Helpers for the chapters: glue values into the prose, and set up Colab."""

from __future__ import annotations

__all__ = ["glue", "fmt", "show_records"]


def glue(name: str, value) -> None:
    """Make ``value`` available to the chapter's prose as ``{glue:text}`name```.

    Uses myst-nb's glue when it is installed (the website build); elsewhere,
    in Colab for instance, it does nothing, so the chapter still runs.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # pragma: no cover - depends on the reader's environment
        return
    myst_glue(name, value, display=False)


def fmt(n: int) -> str:
    """An integer with thousands separators: ``462422016 -> '462,422,016'``."""
    return f"{int(n):,}"


def show_records(records) -> bool:
    """Print validation records as a table (``published.records_table``); return whether all are ok."""
    from .published import records_table

    print(records_table(records))
    return all(r.ok for r in records)
