import pytest

from sepconv import published
from sepconv.published import CheckpointRow, PublishedValue, check_table, checkpoint_row, in_unit, matches
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
    # significant digits: "1600" has two, "62" two, "2" one
    assert matches(_value("1600", "K", "significant"), 1_605_632)
    assert not matches(_value("1600", "K", "significant"), 1_650_000)
    assert matches(_value("62", "K", "significant"), 62_499) and not matches(_value("62", "K", "significant"), 62_720)
    assert matches(_value("2", "K", "significant"), 2_048)
    # shares are exact fractions
    from fractions import Fraction
    assert matches(_value("1.91", "%", "nearest"), Fraction(10_838_016, 568_740_352))
    with pytest.raises(TypeError, match="exact"):
        matches(_value("1.91", "%", "nearest"), 0.0191)


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


def test_known_disagreements_are_checked_and_explained():
    records = validate(["mobilenet_v1_table4", "mobilenet_v1_table6_7"])
    known = [r for r in records if not r.agrees]
    assert {(r.row, r.quantity) for r in known} == {("Conv MobileNet", "macs"), ("1.0 MobileNet-160", "macs")}
    assert all(r.ok and not r.matches and r.note for r in known)
    # if a change made a known disagreement match, the record would fail
    computed = COMPUTERS["mobilenet_v1_table6_7"]()
    computed[("1.0 MobileNet-160", "macs")] = 290_000_000
    flipped = [r for r in check_table("mobilenet_v1_table6_7", computed) if r.row == "1.0 MobileNet-160"]
    assert [r.ok for r in flipped if r.quantity == "macs"] == [False]


def test_v2_checkpoint_table_rule_is_truncation_with_1001_classes():
    """The rule is discovered, not assumed: only truncation of the 1001-class counts fits all 44 values."""
    from sepconv.models import model_cost
    from sepconv.published import published_table

    def fits(rule, classes):
        for value in published_table("mobilenet_v2_checkpoints"):
            row = checkpoint_row(value.row)
            network = model_cost(row.model, alpha=row.alpha, resolution=row.resolution, classes=classes)
            c = network.macs if value.quantity == "macs" else network.params_excluding_norm
            if not matches(PublishedValue("t", value.row, value.quantity, value.published, "M", rule), c):
                return False
        return True

    assert fits("truncate", 1001)
    assert not fits("nearest", 1001) and not fits("nearest", 1000) and not fits("truncate", 1000)


def test_v3_checkpoint_table_rule_and_the_notes_numbers():
    """MACs round to nearest (truncation breaks the Large rows); the notes' alternative counts hold."""
    from sepconv.models import make_divisible
    from sepconv.models.mobilenet_v3 import MOBILENET_V3_SMALL, resolve_mobilenet_v3
    from sepconv.published import published_table

    computed = COMPUTERS["mobilenet_v3_checkpoints"]()
    large_macs = [v for v in published_table("mobilenet_v3_checkpoints") if "large" in v.row and v.quantity == "macs"]
    for rule, fits_all in (("nearest", True), ("truncate", False)):
        fits = [matches(PublishedValue("t", v.row, "macs", v.published, "M", rule), computed[(v.row, "macs")])
                for v in large_macs]
        assert all(fits) == fits_all and len(fits) == 3
    # 1000 instead of 1001 classes changes no verdict
    at_1000 = COMPUTERS["mobilenet_v3_checkpoints"](classes=1000)
    for value in published_table("mobilenet_v3_checkpoints"):
        key = (value.row, value.quantity)
        assert at_1000[key] != computed[key] and matches(value, at_1000[key]) == matches(value, computed[key])
    # the Small rows' 1280-unit-head hypothesis of the notes: 2.94M at 1.0; 43.77M and 2.40M at 0.75
    wide_head = dict(MOBILENET_V3_SMALL, head=1280)
    at_1 = resolve_mobilenet_v3(wide_head, 1.0, 224, 1001, "keras").cost()
    at_075 = resolve_mobilenet_v3(wide_head, 0.75, 224, 1001, "keras").cost()
    assert round(at_1.params_excluding_norm / 1e6, 2) == 2.94 and round(at_1.macs / 1e6, 2) == 56.92
    assert round(at_075.macs / 1e6, 2) == 43.77 and round(at_075.params_excluding_norm / 1e6, 2) == 2.40
    # squeeze-excite on the last 576-channel convolution: two 1x1 layers through make_divisible(576 / 4) = 144
    assert round(2 * 576 * make_divisible(576 / 4) / 1e6, 2) == 0.17


def test_records_table_lists_every_record_with_its_verdict():
    from sepconv.published import records_table

    records = validate(["mobilenet_v1_table6_7"])
    lines = records_table(records).splitlines()
    assert lines[0].split() == ["row", "quantity", "published", "ours", "rule", "agrees"]
    assert len(lines) == 1 + len(records)
    assert "290 M" in lines[11] and "291 M" in lines[11] and lines[11].endswith("NO (known; see note)")
    assert lines[1].endswith("yes")


def test_missing_rows_and_unknown_tables_are_errors():
    with pytest.raises(KeyError, match="no computed value for row 'Convolution'"):
        check_table("mobilenet_v1_table3", {})
    with pytest.raises(ValueError, match="unknown published table 'nope'"):
        published.table_info("nope")
    with pytest.raises(ValueError, match="no computation registered"):
        validate(["nope"])


def test_checkpoint_row_labels_have_one_decoder():
    assert checkpoint_row("MobileNet_v1_0.50_160") == CheckpointRow("mobilenet_v1", 0.5, 160)
    assert checkpoint_row("mobilenet_v2_1.4_224") == CheckpointRow("mobilenet_v2", 1.4, 224)
    assert checkpoint_row("mobilenet_v3_small_minimalistic_1.0_224") == CheckpointRow("mobilenet_v3_small", 1.0, 224,
                                                                                      True)
    labels = {v.row for t in ("mobilenet_v1_checkpoints", "mobilenet_v2_checkpoints", "mobilenet_v3_checkpoints")
              for v in published.published_table(t)}
    assert len(labels) == 16 + 22 + 6 and all(checkpoint_row(label) for label in labels)
    for bad in ("mobilenet_v9_1.0_224", "mobilenet_v2_wide_224", "mobilenet_v2_minimalistic_1.0_224", "Convolution"):
        with pytest.raises(ValueError, match=f"not a checkpoint row label .*'{bad}'"):
            checkpoint_row(bad)
