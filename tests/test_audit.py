"""Tests for the paper self-consistency audit (qac/paper/audit.py, audit_tables.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from qac.paper.audit import audit, audit_markdown
from qac.paper.audit_tables import Finding


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return audit()


def _by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def _row(table: str, method: str, quantity: str, value: float, **kw: Any) -> dict[str, Any]:
    row = {
        "table": table,
        "dataset": kw.pop("dataset", "cifar10"),
        "architecture": kw.pop("architecture", "resnet20"),
        "method": method,
        "quantity": quantity,
        "value": value,
        "unit": "steps" if "timesteps" in quantity else "%",
    }
    row.update(kw)
    return row


def consistent_frame() -> pd.DataFrame:
    """A small paper-like reference in which every number agrees with every other."""
    rows = [
        _row("table1", "QAC", "ann_acc", 92.0),
        _row("table1", "QAC", "avg_timesteps", 3.0),
        _row("table1", "QAC", "snn_acc", 91.5),
        _row("table1", "QCFS", "ann_acc", 92.5),
        _row("table1", "QCFS", "snn_acc", 85.0, T=4),
        _row("table1", "QCFS", "snn_acc", 89.0, T=8),
        _row("table1", "QCFS", "ann_acc", 95.0, architecture="vgg16"),
        _row("table1", "QCFS", "snn_acc", 93.0, architecture="vgg16", T=4),
        _row("table3", "QAC", "snn_acc", 91.0, calibration="base"),
        _row("table3", "QAC", "snn_acc", 91.5, calibration="base+cal"),
        _row("table4", "QAC", "snn_acc", 90.0, alignment="repl+aver"),
        _row("table4", "QAC", "snn_acc", 88.0, alignment="repl+trunc"),
        _row("table4", "QAC", "snn_acc", 89.0, alignment="aver+trunc"),
        _row("table4", "QAC", "snn_acc", 91.0, alignment="aver+aver"),
        _row("table6", "QAC", "avg_timesteps", 3.0),
        _row("table6", "QAC", "snn_acc", 91.5),
        _row("table6", "tdBN", "snn_acc", 92.9, architecture="resnet18", T=4),
    ]
    for k, v in enumerate([91.0, 91.3, 91.4, 91.45, 91.48, 91.49], start=1):
        rows.append(_row("table5", "QAC", "snn_acc", v, k=k))
    for T, q, a in [(1, 60.0, 60.0), (2, 70.0, 85.0), (4, 80.0, 90.0), (8, 88.0, 91.0)]:
        rows.append(_row("table8", "QCFS", "snn_acc", q, T=T, L=4))
        rows.append(_row("table8", "QCFS+aver", "snn_acc", a, T=T, L=4))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- paper


def test_finds_sec75_text_vs_table7(findings: list[Finding]) -> None:
    f = _by_id(findings)["text:sec7.5-resnet18-resnet20-cifar100"]
    assert f.severity == "error"
    assert "75.51" in f.description and "77.81" in f.description
    assert 75.51 in f.values["numbers_in_text"]


def test_finds_sgdnd_claim(findings: list[Finding]) -> None:
    f = _by_id(findings)["text:sec5.2-vgg16-beats-64-and-32-step-methods"]
    assert "95.53" in f.description


def test_finds_aver_aver_equals_2T(findings: list[Finding]) -> None:
    f = _by_id(findings)["table4-aver-aver-vs-base"]
    assert len(f.values) == 6
    for v in f.values.values():
        assert v["table4_aver_aver"] == v["table5_2T"]
        assert "Table 5 2T" in v["same_value_in"]


def test_finds_repl_aver_equal_to_base(findings: list[Finding]) -> None:
    f = _by_id(findings)["table4-repl+aver-equals-base"]
    assert set(f.values) == {"resnet18/cifar10", "vgg16/cifar10"}


def test_finds_calibration_lowering(findings: list[Finding]) -> None:
    f = _by_id(findings)["table3-calibration-lowers-accuracy"]
    assert f.values == {
        "resnet18/cifar10": {"base": 95.31, "base+cal": 95.29},
        "resnet20/cifar100": {"base": 65.80, "base+cal": 65.39},
    }


def test_finds_table8_exceptions(findings: list[Finding]) -> None:
    by = _by_id(findings)
    f = by["table8-aver-not-better"]
    assert len(f.values["lower"]) == 14
    assert set(f.values["ties"]) == {"vgg16/cifar10 L=16 T=32", "resnet20/cifar100 L=8 T=64"}
    assert "resnet20/cifar10 L=2 T=32" in f.values["lower"]
    assert all(not k.endswith(" T=1") for k in f.values["lower"])
    t1 = by["table8-t1-not-identical"]
    assert t1.values == {"resnet20/cifar10 L=8 T=1": {"QCFS": 52.68, "QCFS+aver": 52.69}}


def test_finds_table5_dips_and_copied_rows(findings: list[Finding]) -> None:
    by = _by_id(findings)
    dips = by["table5-non-monotonic"].values
    assert set(dips) == {"resnet20/cifar100 2T->3T", "vgg16/cifar100 3T->4T"}
    copied = by["literature-rows-copied-across-architectures"]
    assert "RTS" in copied.description and "SNNC-AP" in copied.description
    assert "SNM" not in copied.description  # SNM* has no ResNet-18 counterpart


def test_snn_above_ann(findings: list[Finding]) -> None:
    f = _by_id(findings)["snn-exceeds-ann-at-base-T"]
    assert f.values["resnet20/cifar100 Table 4 aver+aver"] == {"snn": 67.20, "ann": 66.32}


def test_consistent_parts_of_paper_raise_nothing(findings: list[Finding]) -> None:
    ids = {f.id for f in findings}
    # Tables 1/2/7 'ours' == Table 3 Base+CAL, Table 6 == Tables 1/2/7, Table 5 T == Base
    assert not any(i.endswith("-vs-table3-cal") for i in ids)
    assert not any(i.startswith("table6-") for i in ids)
    assert "table5-T-vs-table3" not in ids
    assert "text:sec7.3-cifar100-base-T" not in ids


def test_findings_sorted_by_severity(findings: list[Finding]) -> None:
    order = {"error": 0, "warning": 1, "info": 2}
    ranks = [order[f.severity] for f in findings]
    assert ranks == sorted(ranks)


# ----------------------------------------------------------------------------- hand-made


def test_no_findings_on_consistent_frame() -> None:
    assert audit(consistent_frame(), claims=[]) == []


def test_consistent_text_claim_gives_no_finding() -> None:
    claims = [
        {
            "id": "ok",
            "section": "x",
            "quote": "q",
            "applies_to": "paper",
            "check": {
                "kind": "value",
                "select": {"table": "table1", "method": "QAC", "quantity": "snn_acc"},
                "op": "==",
                "expected": 91.5,
            },
        },
        {
            "id": "fig",
            "section": "x",
            "quote": "q",
            "applies_to": "paper",
            "check": {"kind": "none"},
        },
    ]
    assert audit(consistent_frame(), claims=claims) == []
    claims[0]["check"]["expected"] = 75.51
    (f,) = audit(consistent_frame(), claims=claims)
    assert f.id == "text:ok" and f.severity == "warning"


def _mutate(df: pd.DataFrame, value: float, **where: Any) -> pd.DataFrame:
    df = df.copy()
    mask = pd.Series(True, index=df.index)
    for col, want in where.items():
        mask &= df[col] == want
    assert mask.sum() == 1
    df.loc[mask, "value"] = value
    return df


@pytest.mark.parametrize(
    ("where", "value", "expected_id"),
    [
        (
            {"table": "table6", "method": "QAC", "quantity": "snn_acc"},
            91.4,
            "table6-qac-snn_acc-vs-headline",
        ),
        (
            {"table": "table6", "quantity": "avg_timesteps"},
            3.1,
            "table6-qac-avg_timesteps-vs-headline",
        ),
        ({"table": "table3", "calibration": "base+cal"}, 91.6, "table1-qac-vs-table3-cal"),
        (
            {"table": "table3", "calibration": "base+cal"},
            90.5,
            "table3-calibration-lowers-accuracy",
        ),
        ({"table": "table5", "k": 1}, 90.9, "table5-T-vs-table3"),
        ({"table": "table5", "k": 3}, 91.2, "table5-non-monotonic"),
        ({"table": "table4", "alignment": "aver+aver"}, 91.3, "table4-aver-aver-vs-base"),
        ({"table": "table4", "alignment": "repl+trunc"}, 89.0, "table4-identical-alignments"),
        ({"table": "table8", "method": "QCFS+aver", "T": 1}, 60.1, "table8-t1-not-identical"),
        ({"table": "table8", "method": "QCFS+aver", "T": 8}, 87.0, "table8-aver-not-better"),
        ({"table": "table5", "k": 6}, 92.5, "snn-exceeds-ann-expanded-T"),
        (
            {"table": "table1", "method": "QAC", "quantity": "ann_acc"},
            91.45,
            "qac-ann-equals-snn-value",
        ),
    ],
)
def test_each_check_can_fire(where: dict[str, Any], value: float, expected_id: str) -> None:
    df = _mutate(consistent_frame(), value, **where)
    ids = {f.id for f in audit(df, claims=[])}
    assert expected_id in ids


def test_copied_literature_rows_fire() -> None:
    df = consistent_frame()
    extra = pd.DataFrame(
        [
            _row("table1", "RTS", "ann_acc", 77.16, architecture="resnet18", note="marked *"),
            _row("table1", "RTS", "snn_acc", 70.12, architecture="resnet18", T=64),
            _row("table1", "RTS", "ann_acc", 77.16),
            _row("table1", "RTS", "snn_acc", 70.12, T=64),
            _row("table1", "RTS", "snn_acc", 75.81, T=128),
        ]
    )
    fs = _by_id(audit(pd.concat([df, extra], ignore_index=True), claims=[]))
    f = fs["literature-rows-copied-across-architectures"]
    assert f.severity == "warning" and "(64, 70.12)" in f.description


def test_audit_markdown(findings: list[Finding]) -> None:
    md = audit_markdown(findings)
    assert md.startswith("## Paper self-consistency audit")
    assert "| 1 | error |" in md and "75.51" in md
    assert "No inconsistencies found." in audit_markdown([])
