import pytest

from sepconv import published
from sepconv.published import PublishedValue, check_table, in_unit, matches
from sepconv.validation import COMPUTERS, validate


def _value(text, unit="M", rule="nearest"):
    return PublishedValue("t", "r", "macs", text, unit, rule)


def test_rounding_rules():
    assert matches(_value("52.3"), 52_283_392)
    assert not matches(_value("52.2"), 52_283_392)
    assert matches(_value("569"), 568_740_000)                 # nearest rounds up
    assert not matches(_value("569", rule="truncate"), 568_740_000)
    assert matches(_value("568", rule="truncate"), 568_999_999)  # truncation never rounds up
    assert matches(_value("0.5"), 450_000) and not matches(_value("0.5"), 449_999)  # half up
    assert matches(_value("3504872", unit="1", rule="exact"), 3_504_872)
    assert not matches(_value("3504872", unit="1", rule="exact"), 3_504_873)
    assert str(in_unit(15_091_200, "M", 1, "nearest")) == "15.1"


def test_every_table_has_a_source_and_a_computation():
    for name in published.table_names():
        info = published.table_info(name)
        assert info["source"] and info["title"]
        assert name in COMPUTERS
        assert published.published_table(name)


def test_validate_reproduces_every_published_number():
    records = validate()
    assert records
    failed = [r for r in records if not r.ok]
    assert not failed, failed


def test_a_wrong_number_is_caught():
    computed = COMPUTERS["mobilenet_v1_table3"]()
    computed[("Depthwise Separable Conv", "macs")] += 100_000  # 52.38M prints as 52.4
    records = check_table("mobilenet_v1_table3", computed)
    bad = [r for r in records if not r.ok]
    assert [(r.row, r.quantity, r.published, r.computed_in_unit) for r in bad] == [
        ("Depthwise Separable Conv", "macs", "52.3", "52.4")]


def test_missing_rows_and_unknown_tables_are_errors():
    with pytest.raises(KeyError, match="no computed value for row 'Convolution'"):
        check_table("mobilenet_v1_table3", {})
    with pytest.raises(ValueError, match="unknown published table 'nope'"):
        published.table_info("nope")
    with pytest.raises(ValueError, match="no computation registered"):
        validate(["nope"])
