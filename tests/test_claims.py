"""Tests for the executable claims (qac/claims.py)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from qac.paper.claims import (
    CLAIMS,
    check_all,
    check_c1_ann_equivalence,
    check_c2_case4_fewest_timesteps,
    check_c3_alignment_ranking,
    check_c4_temporal_scaling,
)
from qac.paper.claims_baselines import (
    check_c5_qcfs_aver,
    check_c6_calibration,
    check_c7_qac_vs_qcfs,
)
from qac.paper.reference import COLUMNS, load_reference
from qac.paper.text_claims import check_paper_claims, evaluate_check, select_rows
from qac.paper.verdicts import ClaimResult, claims_markdown


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Results frame with the standard columns (missing cells NA)."""
    base = {"dataset": "cifar10", "architecture": "resnet20", "method": "QAC", "unit": "%"}
    df = pd.DataFrame([{**base, **r} for r in rows])
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    return df


EMPTY = frame([{"table": "x", "quantity": "snn_acc", "value": 1.0}]).iloc[0:0]


# ----------------------------------------------------------------------------- C1


def c1_rows(snn: float, ann: float) -> pd.DataFrame:
    return frame(
        [
            {"table": "c1", "quantity": "ann_acc", "value": ann},
            {"table": "c1", "quantity": "snn_acc", "alignment": "aver+aver+aver", "value": snn},
            # another alignment is ignored
            {"table": "c1", "quantity": "snn_acc", "alignment": "repl+trunc", "value": 50.0},
        ]
    )


def test_c1_holds_fails_notrun() -> None:
    assert check_c1_ann_equivalence(c1_rows(91.0, 91.0)).status == "holds"
    res = check_c1_ann_equivalence(c1_rows(91.0, 91.2))
    assert res.status == "fails" and "91.2" in res.details
    assert check_c1_ann_equivalence(c1_rows(91.0, 91.2), tol=0.5).status == "holds"
    assert check_c1_ann_equivalence(EMPTY).status == "not-run"
    no_ann = c1_rows(91.0, 91.0)
    no_ann = no_ann[no_ann["quantity"] != "ann_acc"]
    assert check_c1_ann_equivalence(no_ann).status == "not-run"


def test_c1_matches_ann_by_scale() -> None:
    df = c1_rows(91.0, 91.0)
    df["scale"] = "paper"
    other = frame([{"table": "c1", "quantity": "ann_acc", "value": 10.0, "scale": "smoke"}])
    res = check_c1_ann_equivalence(pd.concat([df, other], ignore_index=True))
    assert res.status == "holds"


# ----------------------------------------------------------------------------- C2


def c2_rows(ts: dict[int, float], acc: dict[int, float], arch: str = "resnet20") -> pd.DataFrame:
    base = {"table": "fig2", "architecture": arch}
    rows = [
        {**base, "case": c, "quantity": "avg_timesteps", "value": v, "unit": "steps"}
        for c, v in ts.items()
    ]
    rows += [{**base, "case": c, "quantity": "ann_acc", "value": v} for c, v in acc.items()]
    return frame(rows)


ACC = {1: 91.0, 2: 91.3, 3: 90.8, 4: 91.1}


def test_c2_holds_with_inf_case3() -> None:
    res = check_c2_case4_fewest_timesteps(c2_rows({1: 12, 2: 21, 3: math.inf, 4: 3}, ACC))
    assert res.status == "holds", res.details
    assert res.evidence[0]["avg_timesteps"][3] == math.inf


def test_c2_fails() -> None:
    assert check_c2_case4_fewest_timesteps(c2_rows({1: 12, 2: 2, 4: 3}, ACC)).status == "fails"
    wide = {**ACC, 2: 93.0}
    res = check_c2_case4_fewest_timesteps(c2_rows({1: 12, 2: 21, 4: 3}, wide))
    assert res.status == "fails" and res.evidence[0]["acc_within_tol"] is False
    assert check_c2_case4_fewest_timesteps(c2_rows({1: 12, 4: math.inf}, ACC)).status == "fails"


def test_c2_judges_only_the_architectures_of_fig2() -> None:
    """ResNet-18 writes fig2 rows too (for Figs. 5-10), but the paper's Fig. 2 / 11 omit it."""
    failing_resnet18 = c2_rows({1: 12, 2: 2, 4: 3}, ACC, arch="resnet18")
    holding_vgg = c2_rows({1: 12, 2: 21, 4: 3}, ACC, arch="vgg16")
    res = check_c2_case4_fewest_timesteps(pd.concat([failing_resnet18, holding_vgg]))
    assert res.status == "holds", res.details
    assert check_c2_case4_fewest_timesteps(failing_resnet18).status == "not-run"


def test_c2_not_run() -> None:
    assert check_c2_case4_fewest_timesteps(c2_rows({1: 12, 2: 21}, ACC)).status == "not-run"
    assert check_c2_case4_fewest_timesteps(c2_rows({4: 3}, {4: 91.0})).status == "not-run"
    no_case = c2_rows({1: 12, 4: 3}, ACC).drop(columns="case")
    assert check_c2_case4_fewest_timesteps(no_case).status == "not-run"


# ----------------------------------------------------------------------------- C3


def c3_rows(vals: dict[str, float], dataset: str = "cifar10") -> pd.DataFrame:
    return frame(
        [
            {
                "table": "table4",
                "dataset": dataset,
                "quantity": "snn_acc",
                "alignment": a,
                "value": v,
            }
            for a, v in vals.items()
        ]
    )


GOOD4 = {"repl+aver": 90.0, "repl+trunc": 87.0, "aver+trunc": 89.0, "aver+aver": 91.0}


def test_c3() -> None:
    assert check_c3_alignment_ranking(c3_rows(GOOD4)).status == "holds"
    bad_best = {**GOOD4, "repl+aver": 92.0}
    assert check_c3_alignment_ranking(c3_rows(bad_best)).status == "fails"
    other_trunc_worst = {**GOOD4, "repl+trunc": 89.5}  # worst is still a truncation (aver+trunc)
    assert check_c3_alignment_ranking(c3_rows(other_trunc_worst)).status == "holds"
    trunc_above = {**GOOD4, "aver+trunc": 90.5}  # like the paper's ResNet-18/CIFAR-100
    assert check_c3_alignment_ranking(c3_rows(trunc_above)).status == "holds"
    assert check_c3_alignment_ranking(c3_rows(trunc_above), strict_worst=True).status == "fails"
    non_trunc_worst = {**GOOD4, "repl+aver": 86.0}
    assert check_c3_alignment_ranking(c3_rows(non_trunc_worst)).status == "fails"
    missing = {k: v for k, v in GOOD4.items() if k != "aver+aver"}
    assert check_c3_alignment_ranking(c3_rows(missing)).status == "not-run"
    assert check_c3_alignment_ranking(EMPTY).status == "not-run"


def test_c3_groups_separately() -> None:
    df = pd.concat([c3_rows(GOOD4), c3_rows({**GOOD4, "repl+aver": 95.0}, "cifar100")])
    res = check_c3_alignment_ranking(df)
    assert res.status == "fails" and "cifar100" in res.details and len(res.evidence) == 2


# ----------------------------------------------------------------------------- C4


def c4_rows(vals: list[float]) -> pd.DataFrame:
    return frame(
        [
            {"table": "table5", "quantity": "snn_acc", "k": k, "value": v}
            for k, v in enumerate(vals, start=1)
        ]
    )


def test_c4() -> None:
    assert check_c4_temporal_scaling(c4_rows([90, 91, 91.5, 91.6, 91.6, 91.62])).status == "holds"
    # small dip tolerated and reported
    res = check_c4_temporal_scaling(c4_rows([90, 91, 90.9, 91.6, 91.6, 91.6]))
    assert res.status == "holds" and "2T->3T" in res.details
    dipping = c4_rows([90, 91, 90.9, 91.6, 91.6, 91.6])
    assert check_c4_temporal_scaling(dipping, dip_tol=0).status == "fails"
    # still rising beyond 4T
    assert check_c4_temporal_scaling(c4_rows([90, 91, 91.5, 91.6, 92.6, 93.0])).status == "fails"
    # big dip
    assert check_c4_temporal_scaling(c4_rows([90, 91, 89.0, 91.6, 91.6, 91.6])).status == "fails"
    # no gain at all
    assert check_c4_temporal_scaling(c4_rows([90, 90, 90, 90, 90, 90])).status == "fails"
    assert check_c4_temporal_scaling(c4_rows([90, 91, 91.5, 91.6])).status == "not-run"
    assert check_c4_temporal_scaling(EMPTY).status == "not-run"


# ----------------------------------------------------------------------------- C5


def c5_rows(pairs: dict[int, tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for T, (q, a) in pairs.items():
        rows.append(
            {"table": "table8", "method": "QCFS", "quantity": "snn_acc", "T": T, "L": 4, "value": q}
        )
        rows.append(
            {
                "table": "table8",
                "method": "QCFS+aver",
                "quantity": "snn_acc",
                "T": T,
                "L": 4,
                "value": a,
            }
        )
    return frame(rows)


GOOD5 = {1: (60.0, 60.0), 2: (70.0, 85.0), 3: (75.0, 88.0), 4: (80.0, 90.0), 64: (92.0, 91.5)}


def test_c5() -> None:
    res = check_c5_qcfs_aver(c5_rows(GOOD5))
    assert res.status == "holds", res.details
    assert "larger T" in res.details and "T=64" in res.details  # reported, not counted
    bad_small = {**GOOD5, 3: (75.0, 74.0)}
    assert check_c5_qcfs_aver(c5_rows(bad_small)).status == "fails"
    bad_t1 = {**GOOD5, 1: (60.0, 60.01)}
    assert check_c5_qcfs_aver(c5_rows(bad_t1)).status == "fails"
    assert check_c5_qcfs_aver(c5_rows(bad_t1), t1_tol=0.05).status == "holds"
    no_t1 = {k: v for k, v in GOOD5.items() if k != 1}
    assert check_c5_qcfs_aver(c5_rows(no_t1)).status == "not-run"
    assert check_c5_qcfs_aver(c5_rows(no_t1), require_t1=False).status == "holds"
    assert check_c5_qcfs_aver(c5_rows({1: (60, 60), 64: (92, 93)})).status == "not-run"
    assert check_c5_qcfs_aver(EMPTY).status == "not-run"


# ----------------------------------------------------------------------------- C6


def c6_rows(base: float, cal: float) -> pd.DataFrame:
    return frame(
        [
            {"table": "table3", "quantity": "snn_acc", "calibration": "base", "value": base},
            {"table": "table3", "quantity": "snn_acc", "calibration": "base+cal", "value": cal},
        ]
    )


def test_c6() -> None:
    assert check_c6_calibration(c6_rows(90.0, 91.0)).status == "holds"
    assert check_c6_calibration(c6_rows(90.0, 90.0)).status == "holds"
    res = check_c6_calibration(c6_rows(95.31, 95.29))
    assert res.status == "fails" and "95.31 -> 95.29" in res.details
    assert check_c6_calibration(c6_rows(95.31, 95.29), tol=0.05).status == "holds"
    only_base = c6_rows(90.0, 91.0).iloc[:1]
    assert check_c6_calibration(only_base).status == "not-run"


# ----------------------------------------------------------------------------- C7


def c7_rows(qcfs: dict[int, float], qac_t: float = 2.33, qac_acc: float = 94.0) -> pd.DataFrame:
    rows = [
        {"table": "table1", "quantity": "avg_timesteps", "value": qac_t, "unit": "steps"},
        {"table": "table1", "quantity": "snn_acc", "value": qac_acc},
        {"table": "table1", "quantity": "ann_acc", "value": 95.0},
    ]
    rows += [
        {"table": "table1", "method": "QCFS", "quantity": "snn_acc", "T": T, "value": v}
        for T, v in qcfs.items()
    ]
    return frame(rows)


def test_c7() -> None:
    res = check_c7_qac_vs_qcfs(c7_rows({2: 90.0, 4: 93.0, 8: 95.0}))
    assert res.status == "holds"
    assert res.evidence[0]["qcfs_T"] == 4  # smallest T >= 2.33
    assert check_c7_qac_vs_qcfs(c7_rows({2: 90.0, 4: 95.0})).status == "fails"
    assert check_c7_qac_vs_qcfs(c7_rows({2: 90.0})).status == "not-run"  # nothing >= 2.33
    far = c7_rows({32: 96.0}, qac_t=3.47)
    assert check_c7_qac_vs_qcfs(far).status == "fails"
    assert check_c7_qac_vs_qcfs(far, max_t_ratio=2.0).status == "not-run"
    assert check_c7_qac_vs_qcfs(c7_rows({4: 93.0}), margin=2.0).status == "fails"


def test_c7_deduplicates_repeated_tables() -> None:
    df = c7_rows({4: 93.0})
    t6 = df[df["method"] == "QAC"].copy()
    t6 = t6[t6["quantity"] != "ann_acc"]
    t6["table"] = "table6"
    res = check_c7_qac_vs_qcfs(pd.concat([df, t6], ignore_index=True))
    assert res.status == "holds" and len(res.evidence) == 1


# ----------------------------------------------------------------------------- all / md


def test_check_all_and_markdown() -> None:
    results = check_all(EMPTY)
    assert [r.id for r in results] == list(CLAIMS) == [f"C{i}" for i in range(1, 8)]
    assert all(r.status == "not-run" for r in results)  # never 'holds' without inputs
    md = claims_markdown(results)
    assert md.count("| not-run |") == 7 and "| C4 |" in md
    res = check_all(c4_rows([90, 91, 91.5, 91.6, 92.6, 93.0]), options={"C4": {"sat_tol": 2.0}})
    assert {r.id: r.status for r in res}["C4"] == "holds"


def test_claims_on_paper_numbers() -> None:
    results = {r.id: r for r in check_all(load_reference())}
    status = {k: r.status for k, r in results.items()}
    assert status == {
        "C1": "not-run",  # no aver+aver+aver rows in the paper
        "C2": "not-run",  # Fig. 2/11 numbers are not in the text
        "C3": "holds",
        "C4": "holds",
        "C5": "fails",  # T=1 tie broken: ResNet-20/CIFAR-10 L=8 52.68 vs 52.69
        "C6": "fails",  # calibration lowers ResNet-18/CIFAR-10 and ResNet-20/CIFAR-100
        "C7": "fails",  # ImageNet: nearest QCFS setting is T=32 (68.47 > 66.38)
    }
    assert "52.68" in results["C5"].details
    larger = [e for e in results["C5"].evidence if e["kind"] == "larger-T" and not e["ok"]]
    assert len(larger) == 16  # 14 lower + 2 ties at T >= 8
    assert "imagenet" in results["C7"].details


# ----------------------------------------------------------------------------- text claims


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return load_reference()


def test_select_rows(ref: pd.DataFrame) -> None:
    rows = select_rows(ref, {"table": "table8", "T": [1, 2], "L": 4, "alignment": None})
    assert len(rows) == 4 * 2 * 2
    assert select_rows(ref, {"no_such_column": 1}).empty
    assert len(select_rows(ref, {"no_such_column": None})) == len(ref)


def test_evaluate_check_kinds(ref: pd.DataFrame) -> None:
    sel = {"table": "table7", "architecture": "resnet18", "method": "QAC", "quantity": "snn_acc"}
    value = {"kind": "value", "select": sel, "op": "=="}
    assert evaluate_check({**value, "expected": 77.81}, ref)[0] == "holds"
    assert evaluate_check({**value, "expected": 75.51}, ref)[0] == "fails"
    missing = {**sel, "table": "table9"}
    assert evaluate_check({"kind": "value", "select": missing, "expected": 1}, ref)[0] == "not-run"
    cmp = {"kind": "compare", "left": sel, "right": {**sel, "quantity": "ann_acc"}, "op": "<"}
    assert evaluate_check(cmp, ref)[0] == "holds"
    stat = {"kind": "stat", "select": {"table": "table5"}, "stat": "min", "op": ">", "expected": 65}
    assert evaluate_check(stat, ref)[0] == "holds"
    assert evaluate_check({"kind": "none"}, ref)[0] == "not-run"
    assert evaluate_check({"kind": "claim", "claim": "C6"}, ref)[0] == "fails"
    both = {"kind": "all_of", "checks": [stat, {"kind": "none"}]}
    assert evaluate_check(both, ref)[0] == "not-run"
    with pytest.raises(ValueError):
        evaluate_check({"kind": "bogus"}, ref)


def test_paper_text_claims(ref: pd.DataFrame) -> None:
    results: dict[str, ClaimResult] = {r.id: r for r in check_paper_claims(ref)}
    assert results["sec7.5-resnet18-resnet20-cifar100"].status == "fails"
    assert results["sec7.3-cifar100-base-T"].status == "holds"
    assert results["sec4.3-qcfs-aver-over-10pct"].status == "holds"
    assert results["sec5.4-calibration-3pct-imagenet"].status == "holds"
    assert results["sec5.4-calibration-about-1pct-cifar"].status == "fails"
    assert results["sec7.6-consistently-outperforms"].status == "fails"
    assert results["sec5.1-case3-inf"].status == "not-run"
    # on results with Fig. 2 numbers the figure-only statements become checkable
    fig = c2_rows({1: 12, 2: 21, 3: math.inf, 4: 3}, ACC)
    res = {r.id: r.status for r in check_paper_claims(fig, applies_to=("results",))}
    assert res["sec5.1-case3-inf"] == "holds"
    assert res["sec5.1-case12-timesteps-10-to-20"] == "holds"
    assert res["sec5.1-cases-within-1pct"] == "holds"
