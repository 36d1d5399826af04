"""Tests for the comparison with the paper (qac/compare.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qac.paper.compare import (
    DEFAULT_TOLERANCES,
    OUTPUT_COLUMNS,
    compare,
    comparison_markdown,
    write_comparison,
)


def _r(method: str, quantity: str, value: float, **kw: Any) -> dict[str, Any]:
    row = {
        "table": kw.pop("table", "table1"),
        "dataset": kw.pop("dataset", "cifar10"),
        "architecture": kw.pop("architecture", "vgg16"),
        "method": method,
        "quantity": quantity,
        "value": value,
        "unit": "steps" if "timesteps" in quantity else "%",
    }
    row.update(kw)
    return row


@pytest.fixture
def reference() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _r("QAC", "ann_acc", 95.12),
            _r("QAC", "avg_timesteps", 2.33),
            _r("QAC", "snn_acc", 94.78, note="ours in the paper"),
            _r("QCFS", "snn_acc", 93.96, T=4),
            _r("QCFS", "snn_acc", 94.95, T=8),
            _r("RMP", "snn_acc", 90.35, T=64),
            _r("QCFS", "snn_acc", 10.89, table="table8", T=1, L=4),
            _r("QAC", "snn_acc", 95.31, table="table3", calibration="base"),
        ]
    )


def ours_frame(**overrides: float) -> pd.DataFrame:
    vals = {"snn": 93.5, "avg_t": 2.9, "qcfs4": 94.5, "t8": 11.0}
    vals.update(overrides)
    return pd.DataFrame(
        [
            _r("QAC", "snn_acc", vals["snn"], note="CIFAR-10 JPEG copy, expect 2-3% lower"),
            _r("QAC", "avg_timesteps", vals["avg_t"]),
            _r("QCFS", "snn_acc", vals["qcfs4"], T=4.0),  # float T must still join
            _r("QCFS", "snn_acc", vals["t8"], table="table8", T=1, L=4),
        ]
    )


def _get(df: pd.DataFrame, **where: Any) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for col, want in where.items():
        mask &= df[col].isna() if want is None else (df[col] == want)
    rows = df[mask]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_join_delta_and_verdicts_at_paper_scale(reference: pd.DataFrame) -> None:
    out = compare(ours_frame(), reference, scale="paper")
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    snn = _get(out, method="QAC", quantity="snn_acc", calibration=None)
    assert snn["reported"] == 94.78 and snn["ours"] == 93.5
    assert snn["delta"] == pytest.approx(93.5 - 94.78)  # ours - reported
    assert snn["tolerance"] == 1.0 and snn["verdict"] == "not-reproduced"
    assert (
        snn["ours_note"].startswith("CIFAR-10 JPEG") and snn["reported_note"] == "ours in the paper"
    )
    avg_t = _get(out, quantity="avg_timesteps")
    assert avg_t["delta"] == pytest.approx(0.57) and avg_t["verdict"] == "not-reproduced"  # tol 0.5
    qcfs = _get(out, method="QCFS", T=4)
    assert qcfs["delta"] == pytest.approx(0.54) and qcfs["verdict"] == "reproduced"
    t8 = _get(out, table="table8")
    assert t8["verdict"] == "reproduced" and t8["L"] == 4
    assert _get(out, method="QCFS", T=8)["verdict"] == "not-run"
    assert _get(out, method="QAC", quantity="ann_acc")["verdict"] == "not-run"
    assert _get(out, table="table3")["verdict"] == "not-run"


def test_literature_rows_filtered_by_method(reference: pd.DataFrame) -> None:
    out = compare(ours_frame(), reference, scale="paper")
    assert "RMP" not in set(out["method"])
    assert len(out) == len(reference) - 1
    out_all = compare(ours_frame(), reference, scale="paper", methods=None)
    assert _get(out_all, method="RMP")["verdict"] == "not-run"


def test_small_scales_are_informational(reference: pd.DataFrame) -> None:
    for scale in ("smoke", "cpu"):
        out = compare(ours_frame(), reference, scale=scale)
        snn = _get(out, method="QAC", quantity="snn_acc", calibration=None)
        assert snn["verdict"] == "informational"
        assert snn["delta"] == pytest.approx(-1.28)
        assert math.isnan(snn["tolerance"])
        assert set(out["verdict"]) == {"informational", "not-run"}
        assert (out["scale"] == scale).all()


def test_custom_tolerances(reference: pd.DataFrame) -> None:
    tol = {"paper": {**DEFAULT_TOLERANCES["paper"], "snn_acc": 2.0}}
    out = compare(ours_frame(), reference, scale="paper", tolerances=tol)
    assert _get(out, method="QAC", quantity="snn_acc", calibration=None)["verdict"] == "reproduced"
    # a scale made comparable with its own tolerances
    out = compare(
        ours_frame(),
        reference,
        scale="medium",
        tolerances={"medium": {"default": 5.0}},
        comparable_scales=("paper", "medium"),
    )
    assert _get(out, method="QAC", quantity="snn_acc", calibration=None)["verdict"] == "reproduced"


def test_scale_column_filters_ours(reference: pd.DataFrame) -> None:
    mine = ours_frame()
    mine["scale"] = "smoke"
    out = compare(mine, reference, scale="paper")
    assert (out["verdict"] == "not-run").all()


def test_unmatched_ours_and_duplicates(reference: pd.DataFrame) -> None:
    extra = pd.DataFrame([_r("QAC", "avg_bits", 1.7, table="fig2")])
    mine = pd.concat([ours_frame(), extra], ignore_index=True)
    assert "fig2" not in set(compare(mine, reference, scale="paper")["table"])
    out = compare(mine, reference, scale="paper", include_unmatched_ours=True)
    row = _get(out, table="fig2")
    assert row["verdict"] == "no-reference" and row["ours"] == 1.7 and row["method"] == "QAC"
    dup = pd.concat([ours_frame(), ours_frame(snn=95.5).iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate"):
        compare(dup, reference, scale="paper")
    out = compare(dup, reference, scale="paper", on_duplicate="mean")
    assert _get(out, method="QAC", quantity="snn_acc", calibration=None)["ours"] == 94.5


def test_missing_ours_value_is_not_run(reference: pd.DataFrame) -> None:
    out = compare(ours_frame(snn=float("nan")), reference, scale="paper")
    assert _get(out, method="QAC", quantity="snn_acc", calibration=None)["verdict"] == ("not-run")


def test_against_packaged_reference() -> None:
    mine = pd.DataFrame([_r("QCFS", "snn_acc", 10.0, table="table8", T=1, L=4)])
    out = compare(mine, scale="paper")
    row = _get(
        out, table="table8", method="QCFS", T=1, L=4, dataset="cifar10", architecture="vgg16"
    )
    assert row["reported"] == 10.89 and row["verdict"] == "reproduced"
    assert (out["verdict"] == "reproduced").sum() == 1
    assert set(out["method"]) == {"QAC", "QCFS", "QCFS+aver"}


def test_markdown(reference: pd.DataFrame) -> None:
    out = compare(ours_frame(), reference, scale="paper")
    md = comparison_markdown(out)
    assert md.startswith("## Comparison with the paper (scale: paper)")
    assert "### table1" in md and "### table8" in md and "### table3" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| cifar10")]
    assert len(table_rows) == len(out)
    assert any(
        "| 94.78 | 93.50 |  |  | -1.28 | 1.00 | not-reproduced | CIFAR-10 JPEG" in r
        for r in table_rows
    )
    assert any("T=4" in r and "reproduced" in r for r in table_rows)
    short = comparison_markdown(out, include_not_run=False)
    assert "not-run |" not in short and "### table3" not in short
    assert "reproduced 2, not-reproduced 2, not-run 3" in short  # still counted
    smoke = comparison_markdown(compare(ours_frame(), reference, scale="smoke"))
    assert "informational" in smoke and "not expected to match" in smoke
    assert "not-run: the paper reports a number we have none for" in md


def test_interval_tells_not_reproduced_from_inconclusive(reference: pd.DataFrame) -> None:
    """Beyond the tolerance: inconclusive while the reported value lies within our 95 %
    interval widened by the tolerance, not reproduced outside it."""
    mine = ours_frame()
    snn = (mine["quantity"] == "snn_acc") & (mine["table"] == "table1") & (mine["method"] == "QAC")
    wide = mine.assign(ci_low=float("nan"), ci_high=float("nan"))
    wide.loc[snn, ["ci_low", "ci_high"]] = [90.0, 96.0]  # a small test set
    row = _get(
        compare(wide, reference, scale="paper"), method="QAC", quantity="snn_acc", calibration=None
    )
    assert row["verdict"] == "inconclusive" and row["ours_ci_low"] == 90.0
    narrow = wide.copy()
    narrow.loc[snn, ["ci_low", "ci_high"]] = [93.0, 93.7]  # 94.78 > 93.7 + 1.0
    row = _get(
        compare(narrow, reference, scale="paper"),
        method="QAC",
        quantity="snn_acc",
        calibration=None,
    )
    assert row["verdict"] == "not-reproduced"
    md = comparison_markdown(compare(wide, reference, scale="paper"))
    assert "| 94.78 | 93.50 | 90.00 | 96.00 | -1.28 | 1.00 | inconclusive |" in md


def test_not_run_covers_cells_and_literature_rows(reference: pd.DataFrame) -> None:
    """A reported number without one of ours is 'not-run', never 'not-reproduced': both a
    cell we did not run and a literature method we do not run."""
    out = compare(ours_frame(), reference, scale="cpu", methods=None)
    assert _get(out, method="RMP")["verdict"] == "not-run"  # literature row
    assert _get(out, table="table3")["verdict"] == "not-run"  # a cell not run
    assert "not-reproduced" not in set(out["verdict"])


def test_write_comparison(tmp_path: Path, reference: pd.DataFrame) -> None:
    out = compare(ours_frame(), reference, scale="paper")
    paths = write_comparison(out, tmp_path / "cmp")
    assert paths["csv"].name == "comparison.csv" and paths["md"].name == "comparison.md"
    back = pd.read_csv(paths["csv"])
    assert len(back) == len(out) and list(back.columns) == list(OUTPUT_COLUMNS)
    assert paths["md"].read_text(encoding="utf-8") == comparison_markdown(out)
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == [
        "comparison.csv",
        "comparison.md",
    ]  # no temp files left behind
    # overwriting works
    write_comparison(compare(ours_frame(snn=94.7), reference, scale="paper"), tmp_path / "cmp")
    assert "reproduced" in pd.read_csv(paths["csv"])["verdict"].tolist()
