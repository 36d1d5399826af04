"""Tests for the transcribed reference numbers (qac/paper/reference.py, qac/paper/data)."""

from __future__ import annotations

import importlib.resources
import math

import pandas as pd
import pytest

from qac.paper.reference import (
    COLUMNS,
    KEY_COLUMNS,
    TABLE_SHAPES,
    load_paper_claims,
    load_reference,
    normalize_frame,
    reference_path,
)

DATASETS = {"cifar10", "cifar100", "imagenet"}
ARCHS = {
    "vgg9",
    "vgg16",
    "resnet18",
    "resnet19",
    "resnet20",
    "resnet34",
    "sew_resnet34",
    "modified_plif_net",
}
QUANTITIES = {"ann_acc", "snn_acc", "avg_timesteps", "timesteps"}
ALIGNMENTS = {"repl+aver", "repl+trunc", "aver+trunc", "aver+aver"}
LITERATURE_TABLES = ("table1", "table2", "table7")


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return load_reference()


# ----------------------------------------------------------------------------- loader


def test_csv_is_package_data() -> None:
    res = importlib.resources.files("qac.paper") / "data" / "paper_numbers.csv"
    assert res.is_file()
    assert reference_path().is_file()
    header = reference_path().read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == list(COLUMNS)


def test_loader_types(ref: pd.DataFrame) -> None:
    assert list(ref.columns) == list(COLUMNS)
    assert ref["value"].dtype == "float64"
    for col in ("T", "L", "k"):
        assert str(ref[col].dtype) == "Int64"
    # missing text cells are NA, not empty strings
    assert not (ref["alignment"] == "").any()
    assert ref["alignment"].isna().sum() > 0
    assert ref.loc[ref["table"] == "table5", "k"].notna().all()


def test_normalize_frame_rejects_fractional_settings() -> None:
    df = pd.DataFrame({"table": ["x"], "value": [1.0], "T": [2.5]})
    with pytest.raises(ValueError, match="non-integral"):
        normalize_frame(df)
    ok = normalize_frame(pd.DataFrame({"table": ["x"], "value": ["1.5"], "T": [4.0], "case": [4]}))
    assert ok["T"].iloc[0] == 4 and ok["value"].iloc[0] == 1.5
    assert list(ok.columns)[-1] == "case"  # extra columns kept after the standard ones


# ----------------------------------------------------------------------------- completeness


def test_every_table_present(ref: pd.DataFrame) -> None:
    assert set(ref["table"]) == {f"table{i}" for i in range(1, 9)} == set(TABLE_SHAPES)


@pytest.mark.parametrize("table", sorted(TABLE_SHAPES))
def test_table_row_counts(ref: pd.DataFrame, table: str) -> None:
    shape = TABLE_SHAPES[table]
    sub = ref[ref["table"] == table]
    counts = sub.groupby(["dataset", "architecture"]).size().to_dict()
    assert counts == shape.rows_by_group
    assert len(sub) == shape.csv_rows


def test_total_rows(ref: pd.DataFrame) -> None:
    assert len(ref) == sum(s.csv_rows for s in TABLE_SHAPES.values()) == 529


def test_table8_grid(ref: pd.DataFrame) -> None:
    t8 = ref[ref["table"] == "table8"]
    assert len(t8) == 4 * 4 * 2 * 8 == 256
    for _, sub in t8.groupby(["dataset", "architecture"]):
        assert sorted(sub["L"].unique()) == [2, 4, 8, 16]
        assert sorted(sub["T"].unique()) == [1, 2, 3, 4, 8, 16, 32, 64]
        assert set(sub["method"]) == {"QCFS", "QCFS+aver"}
        assert len(sub) == 64


def test_table3_4_5_grids(ref: pd.DataFrame) -> None:
    t3 = ref[ref["table"] == "table3"]
    assert set(t3["calibration"]) == {"base", "base+cal"}
    # '-' cells: ImageNet only for VGG-16
    assert set(t3.loc[t3["dataset"] == "imagenet", "architecture"]) == {"vgg16"}
    t4 = ref[ref["table"] == "table4"]
    assert set(t4["alignment"]) == ALIGNMENTS
    t5 = ref[ref["table"] == "table5"]
    assert sorted(t5["k"].unique()) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("table", LITERATURE_TABLES)
def test_literature_row_structure(ref: pd.DataFrame, table: str) -> None:
    sub = ref[ref["table"] == table]
    for (arch, method), rows in sub.groupby(["architecture", "method"]):
        q = rows["quantity"].value_counts().to_dict()
        assert q.get("ann_acc") == 1, (arch, method)
        if method == "QAC":
            assert q == {"ann_acc": 1, "avg_timesteps": 1, "snn_acc": 1}
            assert rows["T"].isna().all()
        else:
            snn = rows[rows["quantity"] == "snn_acc"]
            assert 1 <= len(snn) <= 2 and snn["T"].notna().all()
            assert rows.loc[rows["quantity"] == "ann_acc", "T"].isna().all()


def test_table6_rows(ref: pd.DataFrame) -> None:
    t6 = ref[ref["table"] == "table6"]
    assert "ann_acc" not in set(t6["quantity"])
    psn = t6[(t6["method"] == "PSN") & (t6["dataset"] == "imagenet")]
    assert len(psn) == 1 and "printed twice" in psn["note"].iloc[0]
    tab = t6[(t6["method"] == "TAB") & (t6["architecture"] == "resnet19")]
    assert len(tab) == 6 and tab["note"].str.contains("garbled").all()
    assert len(t6[t6["method"] == "QAC"]) == 14


# ----------------------------------------------------------------------------- validity


def test_no_duplicate_keys(ref: pd.DataFrame) -> None:
    keys = ref[list(KEY_COLUMNS)].astype(str)
    assert not keys.duplicated().any()


def test_value_ranges_and_units(ref: pd.DataFrame) -> None:
    acc = ref[ref["quantity"].str.endswith("_acc")]
    assert ((acc["value"] > 0) & (acc["value"] <= 100)).all()
    assert (acc["unit"] == "%").all()
    steps = ref[ref["quantity"].isin(["avg_timesteps", "timesteps"])]
    assert (steps["value"] > 0).all() and (steps["unit"] == "steps").all()
    assert ref["value"].map(math.isfinite).all()
    assert (ref["T"].dropna() > 0).all()


def test_vocabularies(ref: pd.DataFrame) -> None:
    assert set(ref["dataset"]) <= DATASETS
    assert set(ref["architecture"]) <= ARCHS
    assert set(ref["quantity"]) <= QUANTITIES
    assert set(ref["alignment"].dropna()) <= ALIGNMENTS
    assert set(ref["calibration"].dropna()) <= {"base", "base+cal"}
    assert not ref["method"].str.contains("ours", case=False).any()
    assert not ref["method"].str.contains(r"\*", regex=True).any()  # '*' lives in the note


def test_starred_rows_noted(ref: pd.DataFrame) -> None:
    t7 = ref[ref["table"] == "table7"]
    starred = t7[t7["note"].str.contains("marked *", regex=False)]
    assert set(zip(starred["architecture"], starred["method"], strict=True)) == {
        ("resnet18", "RTS"),
        ("resnet18", "SNNC-AP"),
        ("resnet20", "RTS"),
        ("resnet20", "SNNC-AP"),
        ("resnet20", "SNM"),
    }


# ----------------------------------------------------------------------------- spot checks

_NONE: dict[str, object] = {}
SPOT: list[tuple[str, str, str, str, str, dict[str, object], float]] = [
    # table, dataset, architecture, method, quantity, settings (T/L/k/alignment/calibration)
    ("table1", "cifar10", "vgg16", "QAC", "snn_acc", _NONE, 94.78),
    ("table1", "cifar10", "vgg16", "QAC", "avg_timesteps", _NONE, 2.33),
    ("table1", "cifar10", "vgg16", "QCFS", "snn_acc", {"T": 8}, 94.95),
    ("table1", "cifar10", "resnet18", "SGDND", "snn_acc", {"T": 16}, 80.74),
    ("table1", "cifar10", "resnet20", "QAC", "ann_acc", _NONE, 91.52),
    ("table2", "imagenet", "vgg16", "SGDND", "snn_acc", {"T": 64}, 75.32),
    ("table2", "imagenet", "vgg16", "QAC", "avg_timesteps", _NONE, 3.47),
    ("table3", "imagenet", "vgg16", "QAC", "snn_acc", {"calibration": "base"}, 63.21),
    ("table3", "cifar100", "resnet20", "QAC", "snn_acc", {"calibration": "base+cal"}, 65.39),
    ("table4", "cifar100", "resnet20", "QAC", "snn_acc", {"alignment": "repl+trunc"}, 55.24),
    ("table4", "cifar10", "vgg16", "QAC", "snn_acc", {"alignment": "aver+aver"}, 95.09),
    ("table5", "cifar100", "resnet20", "QAC", "snn_acc", {"k": 3}, 67.01),
    ("table5", "cifar10", "resnet18", "QAC", "snn_acc", {"k": 6}, 96.11),
    ("table6", "cifar100", "resnet19", "RMP-Loss", "snn_acc", {"T": 6}, 78.98),
    ("table6", "imagenet", "sew_resnet34", "SEW-ResNet", "snn_acc", {"T": 6}, 67.04),
    ("table6", "cifar10", "modified_plif_net", "PSN", "snn_acc", {"T": 4}, 95.32),
    ("table6", "cifar10", "resnet19", "TAB", "snn_acc", {"T": 6}, 94.81),
    ("table7", "cifar100", "resnet18", "QAC", "snn_acc", _NONE, 77.81),
    ("table7", "cifar100", "resnet20", "QAC", "ann_acc", _NONE, 66.32),
    ("table7", "cifar100", "vgg16", "SNM", "snn_acc", {"T": 32}, 71.8),
    ("table7", "cifar100", "resnet20", "RTS", "snn_acc", {"T": 128}, 75.81),
    ("table8", "cifar10", "vgg16", "QCFS", "snn_acc", {"T": 1, "L": 4}, 10.89),
    ("table8", "cifar10", "resnet20", "QCFS+aver", "snn_acc", {"T": 1, "L": 8}, 52.69),
    ("table8", "cifar100", "resnet20", "QCFS", "snn_acc", {"T": 64, "L": 16}, 69.02),
    ("table8", "cifar100", "vgg16", "QCFS+aver", "snn_acc", {"T": 8, "L": 8}, 75.58),
]


@pytest.mark.parametrize("spot", SPOT, ids=lambda s: f"{s[0]}-{s[2]}-{s[3]}-{s[4]}-{s[-1]}")
def test_spot_values(ref: pd.DataFrame, spot: tuple) -> None:
    table, dataset, arch, method, quantity, settings, value = spot
    key = {
        "table": table,
        "dataset": dataset,
        "architecture": arch,
        "method": method,
        "quantity": quantity,
        **{c: settings.get(c) for c in ("T", "L", "k", "alignment", "calibration")},
    }
    mask = pd.Series(True, index=ref.index)
    for col, want in key.items():
        mask &= ref[col].isna() if want is None else (ref[col] == want)
    rows = ref[mask]
    assert len(rows) == 1, rows
    assert rows["value"].iloc[0] == pytest.approx(value, abs=1e-9)


# ----------------------------------------------------------------------------- claims yaml


def test_paper_claims_yaml() -> None:
    claims = load_paper_claims()
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids)) >= 20
    kinds = {"value", "compare", "paired_diff", "stat", "all_of", "claim", "none"}
    for c in claims:
        assert {"id", "section", "quote", "check", "applies_to"} <= set(c)
        assert c["applies_to"] in {"paper", "results", "both"}
        assert c["check"]["kind"] in kinds
        assert c.get("severity", "warning") in {"error", "warning", "info"}
    quotes = " ".join(c["quote"] for c in claims)
    for needle in ("75.51%", "within 1%", "INF", "over 10%", "four times", "10 to over 20"):
        assert needle in quotes
