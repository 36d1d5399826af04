"""Tests for qac/uncertainty.py and the three-verdict claims built on it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qac.paper.claims import check_c3_alignment_ranking
from qac.paper.claims_baselines import check_c6_calibration
from qac.paper.reference import COLUMNS
from qac.uncertainty import (
    Accuracy,
    Difference,
    PerImage,
    accuracy_difference,
    labels_fingerprint,
    mcnemar_exact,
    pack_bits,
    paired_difference,
    unpack_bits,
    verdict_greater,
    verdict_not_lower,
    verdict_within,
    wilson_interval,
)


def test_wilson_interval_matches_the_formula() -> None:
    k, n, z = 81, 263, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(100 * (centre - half), abs=1e-9)
    assert hi == pytest.approx(100 * (centre + half), abs=1e-9)
    assert (round(lo, 2), round(hi, 2)) == (25.53, 36.62)
    assert math.isnan(wilson_interval(0, 0)[0])


def test_exact_mcnemar_textbook() -> None:
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)  # 2 * 11 / 1024
    assert mcnemar_exact(0, 0) == 1.0


def test_pack_unpack_round_trip() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 10_000):
        hits = rng.random(n) < 0.7
        text = pack_bits(hits)
        assert np.array_equal(unpack_bits(text, n), hits)
    assert len(pack_bits(np.ones(10_000, bool))) == 1668  # ~1.7 kB per setting
    with pytest.raises(ValueError):
        unpack_bits(pack_bits(np.ones(16, bool)), 3)
    rec = PerImage.from_predictions([[True, False], [True]], [[3, 1], [2]])
    back = PerImage.from_json(rec.to_json())
    assert back.n == 3 and back.accuracy == pytest.approx(200 / 3)
    assert back.labels == labels_fingerprint([3, 1, 2]) != labels_fingerprint([3, 1, 1])


def test_paired_interval_is_dual_to_mcnemar() -> None:
    a = np.array([True] * 9 + [False] * 1 + [True] * 90)  # b = 9 (A right, B wrong)
    b = np.array([False] * 9 + [True] * 1 + [True] * 90)  # c = 1
    d = paired_difference(a, b)
    assert (d.b, d.c, d.n) == (9, 1, 100) and d.estimate == pytest.approx(8.0)
    assert d.p_value == pytest.approx(0.021484375) and d.low > 0  # p < 0.05 <=> 0 excluded
    same = paired_difference(a, a)
    assert (same.low, same.high, same.p_value) == (0.0, 0.0, 1.0)
    # no per-image data: Newcombe from n, then point
    assert accuracy_difference(Accuracy(60.0, 100), Accuracy(50.0, 100)).method == "unpaired"
    assert accuracy_difference(Accuracy(60.0), Accuracy(50.0)).method == "point"
    # different test images are never paired
    other = Accuracy(90.0, 100, PerImage(b, "x"))
    assert accuracy_difference(Accuracy(91.0, 100, PerImage(a, "y")), other).method == "unpaired"


def test_verdict_rules() -> None:
    def diff(lo: float, hi: float) -> Difference:
        return Difference((lo + hi) / 2, lo, hi, "paired")

    assert verdict_greater(diff(0.5, 2.0)) == "holds"
    assert verdict_greater(diff(-2.0, -0.5)) == "fails"
    assert verdict_greater(diff(-0.5, 2.0)) == "inconclusive"
    assert verdict_greater(diff(0.5, 2.0), margin=1.0) == "inconclusive"
    assert verdict_not_lower(diff(-2.0, -0.1)) == "fails"
    assert verdict_not_lower(diff(-2.0, 0.1)) == "inconclusive"
    assert verdict_not_lower(diff(0.0, 0.0)) == "holds"  # identical predictions
    assert verdict_within(diff(-0.5, 0.5), 1.0) == "holds"
    assert verdict_within(diff(1.5, 3.0), 1.0) == "fails"
    assert verdict_within(diff(0.5, 1.5), 1.0) == "inconclusive"


# ----------------------------------------------------------------------------- claims

N = 1000
LABELS = labels_fingerprint(np.arange(N) % 10)


def _hits(correct_first: int, shift: int = 0) -> np.ndarray:
    """``correct_first`` images right, starting at image ``shift``."""
    return np.roll(np.arange(N) < correct_first, shift)


def _row(hits: np.ndarray, **keys: object) -> dict[str, object]:
    rec = PerImage(hits, LABELS).to_json()
    row = {c: pd.NA for c in COLUMNS}
    row.update(
        table="table4",
        dataset="cifar10",
        architecture="resnet20",
        method="QAC",
        quantity="snn_acc",
        unit="%",
        value=100.0 * hits.sum() / N,
        n=N,
        per_image=rec["correct"],
        labels=rec["labels"],
    )
    row.update(keys)
    return row


def _c3(best: np.ndarray, others: np.ndarray, trunc: np.ndarray) -> str:
    rows = [
        _row(best, alignment="aver+aver"),
        _row(others, alignment="repl+aver"),
        _row(trunc, alignment="repl+trunc"),
        _row(trunc, alignment="aver+trunc"),
    ]
    res = check_c3_alignment_ranking(pd.DataFrame(rows))
    assert all(t["method"] == "paired" for t in res.evidence[0]["tests"])
    return res.status


def test_claim_three_verdicts_on_per_image_vectors() -> None:
    # aver+aver right on 900 images, repl+aver on its 800 first, truncations on 500: holds
    assert _c3(_hits(900), _hits(800), _hits(500)) == "holds"
    # repl+aver right on 900 images where aver+aver is right on 800 of them: fails
    assert _c3(_hits(800), _hits(900), _hits(500)) == "fails"
    # 5 images apart, disagreeing on 15: the run cannot tell
    assert _c3(_hits(800, shift=5), _hits(805), _hits(500)) == "inconclusive"


def test_c6_paired_verdicts_and_fallbacks() -> None:
    base = _hits(800)

    def c6(cal: np.ndarray, **drop: bool) -> str:
        rows = [_row(base, table="table3", calibration="base")]
        rows.append(_row(cal, table="table3", calibration="base+cal"))
        df = pd.DataFrame(rows)
        if drop.get("records"):
            df = df.drop(columns=["per_image", "labels"])
        if drop.get("n"):
            df = df.drop(columns=["per_image", "labels", "n"])
        return check_c6_calibration(df).status

    assert c6(base) == "holds"  # identical predictions (e.g. a reverted calibration)
    assert c6(_hits(700)) == "fails"  # 100 images lost, none gained
    assert c6(_hits(795, shift=3)) == "inconclusive"
    assert c6(_hits(795, shift=3), records=True) == "inconclusive"  # unpaired (Newcombe)
    assert c6(_hits(795, shift=3), n=True) == "fails"  # point: 79.5 < 80
