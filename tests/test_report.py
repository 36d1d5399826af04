"""Tests for the report layer (qac/report): collect, tables, figures, captions, CLI.

Fixtures (tests/fixtures/report/eval/<dataset>/<arch>/<act>.json):

* ``cifar10/resnet20/qac-c4.json`` - a real ``qac evaluate`` output of a tiny, barely trained
  ResNet-20 (numbers meaningless), trimmed: settings aver+aver, aver+aver,cal, repl+aver,
  repl+trunc, aver+trunc, aver+aver,k=2, aver+aver+aver,f64, plus aver+aver+aver and
  aver+aver+aver,cal (copied, invented); per-image records (invented, consistent with every
  accuracy) in it and in the QCFS file below;
* ``cifar10/vgg16/qcfs-L4.json`` - a real QCFS evaluation with the T sweep;
* ``cifar10/resnet20/qac-c1..c3.json`` and ``cifar10/vgg16/qac-c4.json`` - synthetic
  (invented numbers, marked in ``_fixture_note``): ANN-only case files (case 3 = inf) and a
  VGG-16 case-4 model with mixed per-layer T and only the two main settings.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qac.paper.claims import check_all
from qac.paper.compare import compare
from qac.paper.reference import KEY_COLUMNS
from qac.paper.verdicts import claims_markdown
from qac.report._common import ReportInputError, skipped_rows
from qac.report.captions import caption
from qac.report.cli import main as cli_main
from qac.report.collect import (
    LAYER_COLUMNS,
    TIDY_COLUMNS,
    collect,
    layer_profiles,
    read_layers,
    read_tidy,
    reference_rows,
    write_csv,
)
from qac.report.tables import (
    DECIMALS,
    EXPECTED_COLUMNS,
    EXTRA_TABLE_NAMES,
    SIG_COLUMNS,
    SIG_DIGITS,
    TABLE_NAMES,
    expected_rows,
    make_table,
    write_table,
)
from qac.report.tables.columns import INT_COLUMNS, TEXT_COLUMNS

#: Figures need the optional plotting dependencies (pyproject extra "workflow").
HAS_PLOTTING = all(importlib.util.find_spec(m) for m in ("matplotlib", "seaborn", "PIL"))

FIXTURES = Path(__file__).parent / "fixtures" / "report" / "eval"
EVAL_FILES = sorted(str(p) for p in FIXTURES.glob("*/*/*.json"))
R20_C4 = FIXTURES / "cifar10" / "resnet20" / "qac-c4.json"

SKIPPED = [
    ("*", "cifar100", "*", "CIFAR-100 not available at cpu scale"),
    ("*", "imagenet", "vgg16", "ImageNet not available at cpu scale"),
    ("table4", "cifar10", "resnet18", "alignment ablation not run"),
    ("table8", "cifar10", "resnet18", "no QCFS ResNet-18 at this scale"),
]
NOTE = "CPU scale: CIFAR-10 JPEG copy, expect 2-3 % lower"


def _sel(df: pd.DataFrame, **kw) -> pd.DataFrame:
    for k, v in kw.items():
        df = df[df[k].isna()] if v is None else df[df[k] == v]
    return df


def _value(df: pd.DataFrame, **kw) -> float:
    sub = _sel(df, **kw)
    assert len(sub) == 1, (kw, sub)
    return float(sub["value"].iloc[0])


# ----------------------------------------------------------------------------- collect


def test_fixtures_present() -> None:
    assert len(EVAL_FILES) == 6


def test_collect_rows_per_table(tidy: pd.DataFrame) -> None:
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    counts = tidy["table"].value_counts().to_dict()
    assert counts == {
        "fig2": 15,  # 5 QAC models x (ann_acc, avg_timesteps, avg_bits)
        "table1": 7,  # 2 case-4 models x (ann_acc, avg_timesteps, snn_acc) + R20 aver+aver+aver
        "table6": 4,
        "table3": 6,  # base + base+cal per case-4 model + ResNet-20's aver+aver+aver (both)
        "table4": 5,  # ResNet-20: 4 alignments; VGG-16: aver+aver only
        "table5": 4,  # ResNet-20 k=1,2 and aver+aver+aver; VGG-16 k=1
        "table8": 17,  # 2 methods x 8 T + the QCFS ANN row
        "energy": 12,  # 2 models x {base, base+cal} x 3 quantities
        "exactness": 2,
    }
    assert set(tidy["scale"]) == {"cpu"}
    assert set(tidy["table"]) & {"table2", "table7"} == set()
    assert tidy["source"].notna().all()


def test_collect_values_follow_settings(tidy: pd.DataFrame) -> None:
    run = {r["setting"]: r for r in json.loads(R20_C4.read_text())["snn"]}
    ann = json.loads(R20_C4.read_text())["ann"]
    r20 = _sel(tidy, architecture="resnet20")
    main = _sel(r20, alignment=None)
    cal, base = run["aver+aver,cal"]["snn_acc"], run["aver+aver"]["snn_acc"]
    assert cal != base  # the fixture distinguishes them
    assert _value(main, table="table1", quantity="snn_acc") == cal
    assert _value(main, table="table1", quantity="ann_acc") == ann["ann_acc"]
    assert _value(r20, table="table6", quantity="snn_acc") == cal
    assert _value(main, table="table3", calibration="base+cal") == cal
    assert _value(main, table="table3", calibration="base") == base
    assert _value(r20, table="table5", k=1) == base
    assert _value(r20, table="table5", k=2) == run["aver+aver,k=2"]["snn_acc"]
    assert _value(r20, table="table4", alignment="aver+aver") == base
    for pol in ("repl+aver", "repl+trunc", "aver+trunc"):
        assert _value(r20, table="table4", alignment=pol) == run[pol]["snn_acc"]
    assert _sel(r20, table="table1")["calibration"].isna().all()
    aaa = _sel(r20, alignment="aver+aver+aver")  # beside the main policy (tables 1, 3, 5)
    assert _value(aaa, table="table1") == run["aver+aver+aver,cal"]["snn_acc"]
    assert _value(aaa, table="table3", calibration="base+cal") == _value(aaa, table="table1")
    assert _value(aaa, table="table3", calibration="base") == run["aver+aver+aver"]["snn_acc"]
    assert _value(aaa, table="table5") == run["aver+aver+aver"]["snn_acc"]
    assert _sel(aaa, table="table5")["k"].isna().all()  # not a point of the k curve (C4)
    ex = _sel(r20, table="exactness")
    assert (
        _value(ex, quantity="snn_acc", alignment="aver+aver+aver")
        == (run["aver+aver+aver,f64"]["snn_acc"])
    )
    assert _value(ex, quantity="ann_acc") == ann["ann_acc_float64"]
    assert set(_sel(tidy, table="table1")["case"]) == {4}


def test_collect_case3_inf_and_fig2(tidy: pd.DataFrame) -> None:
    f2 = _sel(tidy, table="fig2", architecture="resnet20")
    assert sorted(f2["case"].unique()) == [1, 2, 3, 4]
    for q in ("avg_timesteps", "avg_bits"):
        v = _value(f2, case=3, quantity=q)
        assert math.isinf(v) and v > 0
        assert math.isfinite(_value(f2, case=4, quantity=q))
    assert (f2["method"] == "QAC").all()


def test_collect_table8(tidy: pd.DataFrame) -> None:
    t8 = _sel(tidy, table="table8")
    assert (t8["L"] == 4).all() and t8["case"].isna().all()
    snn = _sel(t8, quantity="snn_acc")
    assert sorted(snn["method"].unique()) == ["QCFS", "QCFS+aver"]
    for m in ("QCFS", "QCFS+aver"):
        assert sorted(_sel(snn, method=m)["T"].astype(int)) == [1, 2, 3, 4, 8, 16, 32, 64]
    ann = _sel(t8, quantity="ann_acc")
    assert len(ann) == 1 and ann["T"].isna().all() and ann["method"].iloc[0] == "QCFS"


def test_collect_main_policy_changes_mapping() -> None:
    df = collect([str(R20_C4)], "cpu", main_policy="repl+aver")
    # repl+aver is now the headline policy; no calibrated repl+aver run -> no table1 rows
    assert _sel(df, table="table1", alignment=None).empty
    assert _value(df, table="table3", calibration="base", alignment=None) == _value(
        df, table="table4", alignment="repl+aver"
    )
    # aver+aver (uncalibrated) still feeds table4
    assert len(_sel(df, table="table4", alignment="aver+aver")) == 1


def test_collect_bad_inputs(tmp_path: Path) -> None:
    bad_name = tmp_path / "eval" / "cifar10" / "resnet20" / "qac-c5.json"
    bad_name.parent.mkdir(parents=True)
    shutil.copy(R20_C4, bad_name)
    with pytest.raises(ReportInputError, match="qac-c5"):
        collect([bad_name], "cpu")
    wrong_arch = tmp_path / "eval" / "cifar10" / "vgg16" / "qac-c4.json"
    wrong_arch.parent.mkdir(parents=True)
    shutil.copy(R20_C4, wrong_arch)
    with pytest.raises(ReportInputError, match="resnet20"):
        collect([wrong_arch], "cpu")
    assert len(collect([wrong_arch], "cpu", check_spec=False)) > 0
    broken = tmp_path / "eval" / "cifar10" / "resnet18" / "qac-c4.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    with pytest.raises(ReportInputError, match="JSON"):
        collect([broken], "cpu")
    with pytest.raises(ReportInputError, match="no such file"):
        collect([tmp_path / "eval" / "cifar10" / "vgg16" / "qcfs-L2.json"], "cpu")


def test_collect_refuses_a_relu_model(tmp_path: Path) -> None:
    """A float pretraining model (act relu, a valid model id) is never filed as QCFS, L=None."""
    data = json.loads((FIXTURES / "cifar10" / "vgg16" / "qcfs-L4.json").read_text())
    data["model"] = {"dataset": "cifar10", "arch": "vgg16", "act": "relu"}
    data["spec"]["activation"] = {"name": "relu"}
    relu = tmp_path / "eval" / "cifar10" / "vgg16" / "relu.json"
    relu.parent.mkdir(parents=True)
    relu.write_text(json.dumps(data))
    for check_spec in (True, False):
        with pytest.raises(ReportInputError, match="not quantized") as err:
            collect([relu], "cpu", check_spec=check_spec)
        assert str(relu) in str(err.value) and "pretraining" in str(err.value)
    with pytest.raises(ReportInputError, match="not evaluated"):
        layer_profiles([relu])
    out = tmp_path / "tidy.csv"
    assert cli_main(["collect", "--scale", "cpu", "--out", str(out), str(relu)]) == 2
    assert not out.exists()
    del data["model"]  # an older record: the model id from the path
    relu.write_text(json.dumps(data))
    with pytest.warns(DeprecationWarning), pytest.raises(ReportInputError, match="not quantized"):
        collect([relu], "cpu")


def test_table8_captions_carry_the_sweep_subset_note(tmp_path: Path) -> None:
    """captions/table8.rst and fig_table8.rst say what tables/table8.* say: the T sweeps ran on
    a class-balanced subset (evaluation.sweep_limit below evaluation.limit)."""
    from qac.report.captions import sweep_subset_note

    note = sweep_subset_note(1000)
    assert "subset of 1,000 test images" in note and "over the whole test set" in note
    assert "over 5,000 test images" in sweep_subset_note([1000], [5000])
    assert caption("table8", sample_note=note).endswith(note)
    assert caption("fig_table8", sample_note=note).endswith(note)
    assert note not in caption("table1", sample_note=note)

    def captions(*args: str) -> dict[str, str]:
        out = tmp_path / "cap" / "-".join(args)
        names = ["table8", "fig_table8", "table4"]
        argv = ["captions", "--out-dir", str(out), "--scale", "cpu", "--names", *names]
        assert cli_main([*argv, *args]) == 0
        return {n: " ".join((out / f"{n}.rst").read_text().split()) for n in names}

    sub = captions("--sweep-limit", "1000")
    for name in ("table8", "fig_table8"):
        assert "class-balanced subset of 1,000 test images" in sub[name], name
        assert "over the whole test set" in sub[name] and sub[name].endswith("``cpu`` scale.")
    assert "subset" not in sub["table4"]
    sub = captions("--limit", "5000", "--sweep-limit", "1000")
    assert "subset of 1,000 test images" in sub["table8"]
    assert "over 5,000 test images" in sub["table8"]
    for args in [(), ("--limit", "1000", "--sweep-limit", "1000"), ("--limit", "500")]:
        assert "class-balanced subset" not in captions(*args)["table8"], args


def test_tidy_and_layers_roundtrip(tmp_path: Path, tidy: pd.DataFrame, layers) -> None:
    write_csv(tidy, tmp_path / "tidy.csv")
    back = read_tidy(tmp_path / "tidy.csv")
    assert list(back.columns) == list(TIDY_COLUMNS)
    assert len(back) == len(tidy)
    np.testing.assert_array_equal(back["value"].to_numpy(), tidy["value"].to_numpy())
    assert back["case"].dtype == tidy["case"].dtype
    assert math.isinf(_value(back, table="fig2", case=3, quantity="avg_timesteps"))
    write_csv(layers, tmp_path / "layers.csv")
    lb = read_layers(tmp_path / "layers.csv")
    assert list(lb.columns) == list(LAYER_COLUMNS)
    np.testing.assert_array_equal(lb["T"].to_numpy(), layers["T"].to_numpy())
    assert not list(tmp_path.glob(".*.tmp"))


def test_layer_profiles(layers: pd.DataFrame) -> None:
    assert list(layers.columns) == list(LAYER_COLUMNS)
    r20 = _sel(layers, architecture="resnet20")
    assert r20.groupby("case").size().to_dict() == {1: 19, 2: 19, 3: 19, 4: 19}
    assert np.isinf(_sel(r20, case=3)["T"]).all()
    assert np.isinf(_sel(r20, case=3)["bits"]).all()
    vgg = _sel(layers, architecture="vgg16", case=4).sort_values("layer_index")
    assert list(vgg["layer_index"]) == list(range(15))
    assert vgg["T"].iloc[-1] == 7.0 and vgg["layer"].iloc[0] == "features.3"
    qcfs = _sel(layers, act="qcfs-L4")
    assert qcfs["case"].isna().all() and (qcfs["L"] == 4).all()


# ----------------------------------------------------------------------------- tables


def _our_numbers(df: pd.DataFrame) -> list[str]:
    cols = set(df.columns)
    base = [c for c in df.columns if f"{c}_paper" in cols]
    skip = {"dataset", "architecture", "method", "source", "type", "status", "note", "L"}
    return base or [c for c in df.columns if c not in skip and c not in {"case", "calibration"}]


@pytest.mark.parametrize("name", TABLE_NAMES + EXTRA_TABLE_NAMES)
def test_make_table_columns_rows_and_skips(name: str, tidy, reference) -> None:
    df = make_table(name, tidy, reference, SKIPPED, note=NOTE)
    assert tuple(df.columns) == EXPECTED_COLUMNS[name]
    ours = df[df["source"] == "ours"] if "source" in df.columns else df
    if name in TABLE_NAMES:
        grid = {
            "cells": [("cifar10", "resnet20"), ("cifar10", "vgg16")],
            "table4": [("cifar10", "resnet20"), ("cifar10", "vgg16"), ("cifar10", "resnet18")],
            "table8": [("cifar10", "vgg16"), ("cifar10", "resnet18")],
        }
        assert len(df) == expected_rows(name, grid, reference=reference)
    assert "note" not in df.columns  # the scale note is the caption's, not a column
    has_number = ours["status"].str.startswith(("ok", "partial")).any()
    assert df.attrs["notes"] == ({"cifar10": NOTE} if has_number else {})
    skipped = ours[ours["status"].str.startswith("skipped (")]
    ok = ours[ours["status"] == "ok"]
    if name not in ("table2", "table7"):  # CIFAR-10 results exist for every other table
        assert len(ok) + len(ours[ours["status"].str.startswith("partial")]) > 0
    numbers = _our_numbers(df)
    assert skipped[numbers].isna().all().all(), "a skipped cell shows a number"
    if name in ("table3", "table4", "table5", "table7", "table8"):
        cifar100 = ours[ours["dataset"] == "cifar100"]
        assert len(cifar100) > 0
        assert (cifar100["status"] == "skipped (CIFAR-100 not available at cpu scale)").all()
    if name == "table4":
        r18 = _sel(df, dataset="cifar10", architecture="resnet18")
        assert r18["status"].iloc[0] == "skipped (alignment ablation not run)"
    if name == "table8":  # an explicitly skipped cell the paper does not have adds rows
        r18 = _sel(df, dataset="cifar10", architecture="resnet18")
        assert len(r18) == 4 * 2 and r18["status"].str.startswith("skipped").all()


def test_table1_values_and_paper_rows(tidy, reference) -> None:
    df = make_table("table1", tidy, reference, SKIPPED, note=NOTE)
    ours = _sel(df, source="ours", architecture="resnet20")
    assert len(ours) == 1
    row = ours.iloc[0]
    paper = _value(
        reference, table="table1", architecture="resnet20", method="QAC", quantity="snn_acc"
    )
    assert row["snn_acc"] == round(
        _value(tidy, table="table1", architecture="resnet20", quantity="snn_acc", alignment=None),
        2,
    )
    aaa = _value(tidy, table="table1", architecture="resnet20", alignment="aver+aver+aver")
    assert row["snn_acc_aver+aver+aver"] == round(aaa, 2)
    assert row["n"] == 128 and row["snn_acc_ci_low"] < row["snn_acc"] < row["snn_acc_ci_high"]
    assert row["snn_acc_paper"] == paper
    assert row["snn_acc_delta"] == pytest.approx(row["snn_acc"] - paper)
    assert row["status"] == "ok"
    qac_paper = _sel(df, method="QAC (paper)")
    assert len(qac_paper) == 3 and (qac_paper["source"] == "paper").all()
    lit = reference[(reference["table"] == "table1") & (reference["method"] != "QAC")]
    assert (df["source"] == "paper").sum() == (lit["quantity"] == "snn_acc").sum() + 3
    r18 = _sel(df, source="ours", architecture="resnet18")
    assert r18["status"].iloc[0] == "missing (no result)" and r18["snn_acc"].isna().all()


def test_skip_hides_existing_numbers(tidy, reference) -> None:
    df = make_table("table4", tidy, reference, [("table4", "cifar10", "resnet20", "why")])
    row = _sel(df, dataset="cifar10", architecture="resnet20").iloc[0]
    assert row["status"] == "skipped (why)"
    assert math.isnan(row["aver+aver"]) and row["aver+aver_paper"] == 91.71


def test_table_without_reference_and_per_dataset_note(tidy) -> None:
    df = make_table("table1", tidy, None, note={"cifar10": "ten", "*": "other"})
    assert len(df) == 2 and (df["source"] == "ours").all()
    assert df["snn_acc_paper"].isna().all() and df.attrs["notes"] == {"cifar10": "ten"}
    assert (
        expected_rows("table1", [("cifar10", "vgg16"), ("cifar10", "resnet20")], reference=None)
        == 2
    )


def test_expected_rows_full_grid(reference) -> None:
    grid = {
        "datasets": {
            "cifar10": ["vgg16", "resnet18", "resnet20"],
            "cifar100": ["vgg16", "resnet18", "resnet20"],
            "imagenet": ["vgg16"],
        }
    }
    lit = reference[(reference["method"] != "QAC") & (reference["quantity"] == "snn_acc")]
    for name, n_cells in (("table1", 3), ("table2", 1), ("table7", 3)):
        n_lit = int((lit["table"] == name).sum())
        assert expected_rows(name, grid, reference=reference) == n_lit + 2 * n_cells
    assert expected_rows("table3", grid, reference=reference) == 7
    assert expected_rows("table4", grid, reference=reference) == 7  # + ImageNet cell
    assert expected_rows("table8", {"cells": [], "L": [2, 4, 8, 16]}) == 4 * 4 * 2
    assert expected_rows("table8", {"cells": [], "L": [32]}) == 4 * 5 * 2
    n6 = int((lit["table"] == "table6").sum())
    assert expected_rows("table6", grid, reference=reference) == n6 + 7 + 7
    empty = make_table("table5", pd.DataFrame(columns=list(TIDY_COLUMNS)), reference)
    assert len(empty) == expected_rows("table5", None, reference=reference) == 6
    assert (empty["status"] == "missing (no result)").all()


def test_table5_base_timesteps(tidy, reference) -> None:
    df = make_table("table5", tidy, reference)
    r20 = _sel(df, dataset="cifar10", architecture="resnet20").iloc[0]
    assert r20["avg_timesteps"] == round(
        _value(tidy, table="table1", architecture="resnet20", quantity="avg_timesteps"), 2
    )
    assert r20["avg_timesteps_paper"] == 3.74
    # a tidy frame without the calibrated run falls back to the case-4 ANN's average T
    only5 = tidy[tidy["table"].isin(["table5", "fig2"])]
    r20b = _sel(
        make_table("table5", only5, reference), architecture="resnet20", dataset="cifar10"
    ).iloc[0]
    assert r20b["avg_timesteps"] == round(
        _value(tidy, table="fig2", architecture="resnet20", case=4, quantity="avg_timesteps"), 2
    )


def test_make_table_rejects_unknown_and_mixed_scales(tidy) -> None:
    with pytest.raises(ReportInputError, match="unknown table"):
        make_table("table9", tidy)
    mixed = pd.concat([tidy, tidy.assign(scale="paper")], ignore_index=True)
    with pytest.raises(ReportInputError, match="scales"):
        make_table("table3", mixed)
    assert len(make_table("table3", mixed, scale="cpu")) == 2


def test_write_table_files(tmp_path: Path, tidy, reference) -> None:
    for name in ("table1", "table8"):
        df = make_table(name, tidy, reference, SKIPPED, note=NOTE)
        paths = write_table(df, tmp_path / "tables" / name, caption(name, reference))
        assert set(paths) == {"csv", "md", "tex"}
        back = pd.read_csv(paths["csv"])
        assert list(back.columns) == list(EXPECTED_COLUMNS[name]) and len(back) == len(df)
        md = paths["md"].read_text().splitlines()
        header = next(line for line in md if line.startswith("| "))
        assert re.match(r"\| dataset +\|", header)
        assert re.match(r"\|:?-+:?\|", md[md.index(header) + 1])
        assert sum(line.startswith("| ") for line in md) == len(df) + 1
        tex = paths["tex"].read_text()
        assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex and "\\caption{" in tex
        assert "\\toprule" in tex and "\\bottomrule" in tex and "\\hline" not in tex
        assert "ann\\_acc" in tex and "_acc" not in tex.replace("\\_acc", "")
    assert "skipped (no QCFS ResNet-18 at this scale)" in paths["md"].read_text()
    assert "\\textless{}L\\textgreater{}" in tex  # table8's caption says qcfs-L<L>
    assert not list((tmp_path / "tables").glob(".*"))


# one value per cell, the scale note once, the precision rule: every table, every rendering
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]\d+)?"
_ONE_NUMBER = re.compile(rf"^(?:{_NUMBER}|-?INF|)$")
_TWO_NUMBERS = re.compile(rf"{_NUMBER}\s*(?:/|\()\s*[+-]?{_NUMBER}")


@pytest.fixture(scope="module")
def written(tmp_path_factory, tidy, reference) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("tables")
    return {
        name: write_table(
            make_table(name, tidy, reference, SKIPPED, note=NOTE), out / name, caption(name)
        )
        for name in TABLE_NAMES + EXTRA_TABLE_NAMES
    }


def _md_table(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in rows]
    return cells[0], cells[1:]


@pytest.mark.parametrize("name", TABLE_NAMES + EXTRA_TABLE_NAMES)
def test_no_cell_holds_two_numbers(name: str, written) -> None:
    paths = written[name]
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    header, body = _md_table(paths["md"])
    assert header == list(csv.columns) == list(EXPECTED_COLUMNS[name])
    assert len(body) == len(csv) > 0
    for col in csv.columns:
        md_col = [r[header.index(col)] for r in body]
        for cell in (*csv[col], *md_col):
            if col in TEXT_COLUMNS:
                assert not _TWO_NUMBERS.search(cell), (name, col, cell)
            else:
                assert _ONE_NUMBER.match(cell), (name, col, cell)


@pytest.mark.parametrize("name", TABLE_NAMES + EXTRA_TABLE_NAMES)
def test_scale_note_once_per_table(name: str, written) -> None:
    paths = written[name]
    md = " ".join(paths["md"].read_text().split())
    tex = " ".join(paths["tex"].read_text().split())
    csv = pd.read_csv(paths["csv"])
    ours = csv[csv["source"] == "ours"] if "source" in csv.columns else csv
    # in the caption, before the table, only when the table holds numbers of ours (none of
    # Tables 2 and 7 here: ImageNet and CIFAR-100 are skipped or missing)
    once = int(ours["status"].str.startswith(("ok", "partial")).any())
    assert once == int(name not in ("table2", "table7"))
    assert md.count(NOTE) == once, name
    assert tex.count(NOTE.replace("%", "\\%")) == once
    if once:
        assert md.index(NOTE) < md.index("| dataset ")
    assert NOTE not in paths["csv"].read_text()


def _decimals(cell: str) -> int:
    return len(cell.split(".")[1]) if "." in cell else 0


def _significant(cell: str) -> int:
    return len(cell.replace("-", "").replace(".", "").strip("0"))


@pytest.mark.parametrize("name", TABLE_NAMES + EXTRA_TABLE_NAMES)
def test_csv_follows_the_precision_rule(name: str, written) -> None:
    csv = pd.read_csv(written[name]["csv"], dtype=str, keep_default_na=False)
    for col in csv.columns:
        for cell in csv[col]:
            if col in TEXT_COLUMNS or cell in ("", "inf", "-inf"):
                continue
            if col in INT_COLUMNS:
                assert re.fullmatch(r"-?\d+", cell), (name, col, cell)
            elif col in SIG_COLUMNS:
                assert "e" in cell or _significant(cell) <= SIG_DIGITS, (name, col, cell)
            else:
                assert _decimals(cell) <= DECIMALS, (name, col, cell)


def test_table6_without_pdf_leftovers(written, reference) -> None:
    text = written["table6"]["md"].read_text()
    for leftover in ("garbled", "Tib (", "Surroguie", "printed", "type:"):
        assert leftover not in text, leftover
    df = pd.read_csv(written["table6"]["csv"])
    tab = df[df["method"] == "TAB"]
    assert len(tab) and (tab["paper_note"] == "Jiang et al., 2024a").all()
    lit = df[(df["source"] == "paper") & ~df["method"].str.startswith("QAC")]
    assert (lit["type"] == "Surrogate Gradient").all()
    assert (df[df["method"].str.startswith("QAC")]["type"] == "ANN-to-SNN").all()


def test_deltas_are_differences_of_shown_values(written) -> None:
    df = pd.read_csv(written["table4"]["csv"])
    for a in ("aver+aver", "repl+aver"):
        both = df[[a, f"{a}_paper", f"{a}_delta"]].dropna()
        assert len(both) and (both[a] - both[f"{a}_paper"]).round(2).eq(both[f"{a}_delta"]).all()


def test_skipped_rows_inputs(tmp_path: Path) -> None:
    csv = tmp_path / "skipped.csv"
    csv.write_text("experiment,dataset,arch,reason\nfig2,cifar100,vgg16,no data\n")
    df = skipped_rows(csv)
    assert df.to_dict("records") == [
        {"experiment": "fig2", "dataset": "cifar100", "architecture": "vgg16", "reason": "no data"}
    ]
    js = tmp_path / "skipped.json"
    js.write_text(json.dumps([["*", "imagenet", "*", "no ImageNet"]]))
    assert skipped_rows(js)["reason"].tolist() == ["no ImageNet"]
    wf = tmp_path / "workflow_skipped.csv"  # the format of qac.workflow.write_skipped
    wf.write_text(
        "artifact,dataset,arch,act,reason\n"
        "table7,cifar100,vgg16,qac-c4,cifar100 is not available at the cpu scale\n"
    )
    assert skipped_rows(wf).iloc[0].to_dict() == {
        "experiment": "table7",
        "dataset": "cifar100",
        "architecture": "vgg16",
        "reason": "cifar100 is not available at the cpu scale",
    }
    header_only = tmp_path / "none.csv"
    header_only.write_text("artifact,dataset,arch,act,reason\n")
    assert len(skipped_rows(header_only)) == 0
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert len(skipped_rows(empty)) == 0
    with pytest.raises(ReportInputError):
        skipped_rows([("table1", "cifar10")])
    with pytest.raises(ReportInputError, match="not found"):
        skipped_rows(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- figures


def _check_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w > 200 and h > 150
        arr = np.asarray(im.convert("L"), dtype=float)
    assert arr.std() > 1.0, f"{path.name} is blank"


# (the command line's figure below; the figures themselves: tests/test_figures.py)


# ----------------------------------------------------------------------------- schema


def test_claims_and_compare_accept_collect_output(tidy, reference) -> None:
    results = {r.id: r for r in check_all(tidy)}
    assert set(results) == {f"C{i}" for i in range(1, 8)}
    assert results["C1"].status == "holds"  # the float64 aver+aver+aver run equals its ANN
    # case 4 fewest timesteps (case 3 inf), but 128 images cannot bound the ANN spread by 1 pp
    assert results["C2"].status == "inconclusive"
    assert results["C2"].evidence[0]["case4_fewest"] is True
    methods = {
        cid: {t["method"] for e in results[cid].evidence for t in e["tests"]}
        for cid in ("C3", "C6")
    }
    # ResNet-20's settings carry per-image records (paired); VGG-16's file has none (unpaired)
    assert methods == {"C3": {"paired"}, "C6": {"paired", "unpaired"}}
    assert results["C3"].status == results["C6"].status == "inconclusive"
    assert "| inconclusive |" in claims_markdown(list(results.values()))
    ref_rows = reference_rows(tidy)
    assert not ref_rows.duplicated([c for c in KEY_COLUMNS]).any()
    out = compare(ref_rows, reference, scale="cpu")
    # every row of ours has a reported counterpart except the QCFS ANN accuracy (table8) and
    # the averaging-everywhere rows beside the main policy (tables 1, 3, 5)
    extra = (ref_rows["alignment"] == "aver+aver+aver").sum()
    assert extra == 4
    assert (out["verdict"] == "informational").sum() == len(ref_rows) - 1 - extra
    got = out[(out["verdict"] == "informational") & (out["table"] == "table1")]
    assert set(got["architecture"]) == {"vgg16", "resnet20"}


# ----------------------------------------------------------------------------- captions


def test_captions_from_reference(reference) -> None:
    names = TABLE_NAMES + EXTRA_TABLE_NAMES + ("fig1", "fig2", "fig3", "figs5_10", "fig7")
    for name in names:
        text = caption(name, reference)
        plain = text.replace("Fig. ", "Fig ").replace("Sec. ", "Sec ").replace("e.g. ", "eg ")
        n = plain.count(". ") + 1
        assert 2 <= n <= 5 and len(text) > 80, (name, text)
    assert "94.78 %" in caption("table1", reference) and "2.33" in caption("table1", reference)
    changed = reference.copy()
    mask = (
        (changed["table"] == "table1")
        & (changed["architecture"] == "vgg16")
        & (changed["method"] == "QAC")
        & (changed["quantity"] == "snn_acc")
    )
    changed.loc[mask, "value"] = 12.34
    assert "12.34 %" in caption("table1", changed)
    with pytest.raises(ReportInputError):
        caption("table42", reference)


# ----------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tmp_path: Path, capsys) -> None:
    tidy_csv, layers_csv = tmp_path / "tidy.csv", tmp_path / "layers.csv"
    skipped_csv = tmp_path / "skipped.csv"
    pd.DataFrame(SKIPPED, columns=["experiment", "dataset", "architecture", "reason"]).to_csv(
        skipped_csv, index=False
    )
    assert cli_main(["collect", "--scale", "cpu", "--out", str(tidy_csv), *EVAL_FILES]) == 0
    assert cli_main(["layers", "--out", str(layers_csv), *EVAL_FILES]) == 0
    prefix = tmp_path / "results" / "cpu" / "tables" / "table3"
    args = ["table", "--name", "table3", "--tidy", str(tidy_csv), "--skipped", str(skipped_csv)]
    assert cli_main([*args, "--note", NOTE, "--out-prefix", str(prefix)]) == 0
    df = pd.read_csv(prefix.with_suffix(".csv"))
    assert list(df.columns) == list(EXPECTED_COLUMNS["table3"])
    md = prefix.with_suffix(".md").read_text()
    assert "Paper (Table 3)" in md and " ".join(md.split()).count(NOTE) == 1
    if HAS_PLOTTING:
        fig_args = [
            "figure",
            "--name",
            "fig1",
            "--tidy",
            str(tidy_csv),
            "--layers",
            str(layers_csv),
            "--skipped",
            str(skipped_csv),
            "--out-dir",
            str(tmp_path / "f"),
        ]
        assert cli_main(fig_args) == 0
        _check_png(tmp_path / "f" / "fig1.png")
    assert cli_main(["captions", "--out-dir", str(tmp_path / "cap"), "--scale", "cpu"]) == 0
    rst = sorted(p.name for p in (tmp_path / "cap").glob("*.rst"))
    assert len(rst) == 13 and "figs5_10.rst" in rst and "fig_table8.rst" in rst
    assert "``cpu``" in (tmp_path / "cap" / "table1.rst").read_text()
    capsys.readouterr()

    bad = [
        ["table", "--name", "table9", "--tidy", str(tidy_csv), "--out-prefix", str(prefix)],
        [
            "table",
            "--name",
            "table1",
            "--tidy",
            str(tmp_path / "nope.csv"),
            "--out-prefix",
            str(prefix),
        ],
        ["collect", "--scale", "cpu", "--out", str(tidy_csv), str(tmp_path / "x.json")],
        ["figure", "--name", "fig2", "--layers", str(layers_csv), "--out-dir", str(tmp_path)],
        ["table", "--name", "table1"],  # missing required arguments
    ]
    for argv in bad:
        try:
            rc = cli_main(argv)
        except SystemExit as exc:  # argparse errors
            rc = exc.code
        err = capsys.readouterr().err
        assert rc == 2, argv
        assert err.startswith("qac.report: error:") and err.count("\n") == 1, err
