"""Helpers for the chapters: glue values into the prose, and set up Colab."""

from __future__ import annotations

__all__ = ["glue", "fmt", "show_records", "show_summary"]


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


def show_summary(records) -> dict:
    """Print one line per published table (numbers, agreeing, known disagreements, ok) and the known
    disagreements with their notes; return the records grouped by table."""
    tables = {}
    for r in records:
        tables.setdefault(r.table, []).append(r)
    print(f"{'table':<30}{'numbers':>8}{'agree':>7}{'known disagreements':>21}{'ok':>5}")
    for name, rs in tables.items():
        print(f"{name:<30}{len(rs):>8}{sum(r.matches for r in rs):>7}{sum(not r.agrees for r in rs):>21}"
              f"{str(all(r.ok for r in rs)):>6}")
    assert all(r.ok for r in records), [r for r in records if not r.ok]
    return tables
