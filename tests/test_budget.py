"""The benchmarks' budgets (``sepconv.benchmarks.budget``): one typed setting per run."""

import dataclasses

import pytest

from sepconv.benchmarks import budget as B


def _numbers(value):
    """Every number inside a budget, in field order (tuples and nested settings flattened)."""
    if dataclasses.is_dataclass(value):
        return [n for f in dataclasses.fields(value) for n in _numbers(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_budget_picks_quick_or_full():
    assert B.budget(True) is B.QUICK and B.budget(False) is B.FULL
    assert B.QUICK.name == "quick" and B.FULL.name == "full" and not B.QUICK.models and B.FULL.models


@pytest.mark.parametrize("small, large", [(B.QUICK, B.FULL), (B.DEVICE_TINY, B.DEVICE_FULL)])
def test_the_quick_budget_is_nowhere_larger(small, large):
    for field in dataclasses.fields(small):
        a, b = _numbers(getattr(small, field.name)), _numbers(getattr(large, field.name))
        if a and len(a) == len(b):
            assert all(x <= y for x, y in zip(a, b)), field.name
        elif a:  # fewer entries (batches, networks, shapes): a shorter list
            assert len(a) <= len(b) and max(a) <= max(b), field.name


def test_budgets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        B.FULL.repeats = 1


def test_training_size_gives_the_experiment_its_arguments():
    assert B.QUICK.training.arguments() == {"name": "mobilenet_v1", "batch": 2, "resolution": 64, "rounds": 1,
                                            "repeats": 1}
