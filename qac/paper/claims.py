"""The paper's qualitative claims as executable checks.

Every check takes a tidy results frame with the columns of the reference CSV
(``table, dataset, architecture, method, quantity, T, L, k, alignment, calibration, value,
unit, note``; optionally ``scale`` and ``case``) and returns a :class:`ClaimResult` whose
``status`` is ``"holds"``, ``"fails"``, ``"inconclusive"`` (this run cannot tell: an interval
contains the boundary) or ``"not-run"`` (inputs missing - never ``"holds"``), with the numbers
behind the verdict in ``evidence``.

Uncertainty. Every accuracy comparison inside C2-C7 is a difference A - B in percentage points
with a 95 % interval (:func:`qac.uncertainty.accuracy_difference`): *paired* on the test images
(exact McNemar test and its dual exact interval) when both rows carry per-image records
(columns ``per_image``, ``n``, ``labels`` of :func:`qac.report.collect.collect`) of the same test
images; else *unpaired* (Newcombe's interval) when both rows have ``n``; else *point* (the
paper's own numbers, old results), where the verdict is the plain comparison. Which one was
used is in each test's ``method``. The rule of each claim is in its check's docstring; a claim
over several groups fails if any group fails, holds if all hold, else is inconclusive.

The same checks run on the paper's own numbers (``check_all(load_reference())``), which is
a useful self-consistency test of the paper.

Claims
------
C1  SNN with averaging alignment at every layer boundary == its quantized ANN.
C2  Case 4 (t, alpha) gives the fewest average timesteps; ANN accuracies of the four
    parameterisations within 1 pp (Sec. 5.1 / Fig. 2, 11).
C3  ``aver+aver`` is the best temporal alignment, truncation the worst (Table 4).
C4  Accuracy rises with the timestep multiplier k and saturates by about 4T (Table 5).
C5  QCFS+aver beats QCFS at small T (2-4) and equals it at T = 1 (Table 8).
C6  Calibration (base+cal) never lowers accuracy vs base (Table 3).
C7  QAC beats QCFS at a comparable timestep budget (Tables 1, 2, 7).

C1-C4 are defined here, C5-C7 in :mod:`qac.paper.claims_baselines`. Each check groups rows,
tests and concludes with the helpers of :mod:`qac.paper.verdicts` (its ``conclude`` owns the
status / evidence / details skeleton); the text-level statements of
``qac/paper/data/paper_claims.yaml`` are evaluated by :mod:`qac.paper.text_claims`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from qac.experiments import ALIGNMENT_POLICIES, FIG2_CELLS, MAIN_POLICY
from qac.paper.claims_baselines import (
    check_c5_qcfs_aver,
    check_c6_calibration,
    check_c7_qac_vs_qcfs,
)
from qac.paper.verdicts import (
    ClaimResult,
    Evidence,
    acc_by,
    as_ok,
    clean,
    conclude,
    count_status,
    describe,
    fmt,
    group_cols,
    groups,
    label,
    mean_by,
    not_holding,
    pair_test,
    prep,
)
from qac.uncertainty import combine

__all__ = [
    "ALIGNMENTS",
    "TRUNCATIONS",
    "FIG2_ARCHITECTURES",
    "check_c1_ann_equivalence",
    "check_c2_case4_fewest_timesteps",
    "check_c3_alignment_ranking",
    "check_c4_temporal_scaling",
    "CLAIMS",
    "check_all",
]

#: The four temporal alignments of Table 4 (expansion + reduction).
ALIGNMENTS: tuple[str, ...] = ALIGNMENT_POLICIES
#: Alignments that use truncation for temporal reduction.
TRUNCATIONS: tuple[str, ...] = tuple(p for p in ALIGNMENT_POLICIES if "trunc" in p)


# ----------------------------------------------------------------------------- C1


def check_c1_ann_equivalence(
    results: pd.DataFrame,
    *,
    alignments: Sequence[str] = ("aver+aver+aver",),
    tol: float = 0.0,
    table: str = "exactness",
) -> ClaimResult:
    """C1: the SNN with averaging alignment at every boundary equals its quantized ANN.

    Every ``snn_acc`` row whose ``alignment`` is in ``alignments`` is paired with the
    ``ann_acc`` row of the same dataset and architecture (narrowed, where that leaves a
    candidate, by ``scale``, ``case``, ``method``, ``table``, ``L``).  The claim holds when
    ``|snn - ann| <= tol`` (percentage points; default exact, plus 1e-9 float slack) for
    every pair.  Pairs whose ANN match is missing or ambiguous are reported and skipped.
    Exact (no interval: equality is an identity, not a sampling question).  When ``results``
    hold rows of ``table`` (our ``exactness`` table, float64), only those are used: the
    averaging-everywhere columns of Tables 1, 3 and 5 are float32 or calibrated.
    """
    title = "SNN with averaging alignment everywhere equals its quantized ANN"
    df = prep(results)
    if (df["table"] == table).any():
        df = df[df["table"] == table]
    snn = df[(df["quantity"] == "snn_acc") & df["alignment"].isin(list(alignments))]
    ann = df[df["quantity"] == "ann_acc"]
    evidence: Evidence = []
    n_ok = n_total = 0
    skipped = 0
    for _, row in snn.iterrows():
        cand = ann[
            (ann["dataset"] == row["dataset"]) & (ann["architecture"] == row["architecture"])
        ]
        for col in ("scale", "case", "method", "table", "L"):
            if col in df.columns and not pd.isna(row[col]) and not cand.empty:
                narrowed = cand[cand[col] == row[col]]
                if not narrowed.empty:
                    cand = narrowed
        values = sorted(set(cand["value"].round(9)))
        item = {
            "dataset": row["dataset"],
            "architecture": row["architecture"],
            "alignment": row["alignment"],
            "snn_acc": float(row["value"]),
        }
        for col in ("scale", "case", "L", "T"):
            if col in df.columns:
                item[col] = clean(row[col])
        if len(values) != 1:
            item.update(
                ann_acc=None,
                diff=None,
                ok=None,
                reason="no matching ann_acc" if not values else "ambiguous ann_acc",
            )
            skipped += 1
            evidence.append(item)
            continue
        diff = float(row["value"]) - values[0]
        ok = abs(diff) <= tol + 1e-9
        item.update(ann_acc=values[0], diff=diff, ok=ok)
        evidence.append(item)
        n_total += 1
        n_ok += int(ok)

    def gaps(ev: Evidence) -> str:
        bad = [e for e in ev if e.get("ok") is False]
        text = ""
        if bad:
            worst = max(bad, key=lambda e: abs(e["diff"]))
            text += (
                f"; largest gap {worst['dataset']}/{worst['architecture']}: "
                f"SNN {fmt(worst['snn_acc'])} vs ANN {fmt(worst['ann_acc'])}"
            )
        return text + (f"; {skipped} rows without a unique ANN match skipped" if skipped else "")

    return conclude(
        "C1",
        title,
        evidence,
        status=count_status(n_ok, n_total),
        not_run=f"no snn_acc rows with alignment in {list(alignments)} paired with an ann_acc row"
        + (f" ({skipped} unpaired)" if skipped else ""),
        summary=f"{n_ok}/{n_total} SNN/ANN pairs equal within {tol} pp",
        extra=gaps,
    )


# ----------------------------------------------------------------------------- C2


# The architectures of the paper's Fig. 2 / Fig. 11 (Sec. 5.1): C2 is the claim about them only.
FIG2_ARCHITECTURES: tuple[str, ...] = tuple(dict.fromkeys(arch for _, arch in FIG2_CELLS))


def check_c2_case4_fewest_timesteps(
    results: pd.DataFrame,
    *,
    acc_tol: float = 1.0,
    table: str = "fig2",
    architectures: tuple[str, ...] = FIG2_ARCHITECTURES,
) -> ClaimResult:
    """C2: case 4 gives the fewest average timesteps, ANN accuracy within ``acc_tol``.

    Judged on the architectures of the paper's Fig. 2 / 11 only (``architectures``; other
    models also write fig2 rows, for Figs. 5-10). Uses rows of ``table`` (default ``fig2``)
    with a ``case`` column (1-4) and quantities ``avg_timesteps`` (``inf`` allowed, e.g. case
    3) and ``ann_acc``.  Per (dataset, architecture[, scale]) group the claim needs case 4 and
    at least one other case with both quantities.  Rule per group:

    * *fewest* (exact, timesteps are not sampled): case 4's average T is finite and strictly
      below every other case's (``inf`` counts as larger), else the group fails;
    * *within*: D = most accurate case - least accurate case (paired on the test images when
      both carry per-image records): holds when D's 95 % interval lies inside
      [-acc_tol, acc_tol], fails when it lies entirely above ``acc_tol``, inconclusive
      otherwise (:func:`qac.uncertainty.verdict_within`).
    """
    title = "Case 4 gives the fewest avg. timesteps with ANN accuracy within 1% of other cases"
    df = prep(results)
    if "case" not in df.columns:
        return conclude("C2", title, [], not_run="results have no 'case' column")
    df = df[(df["table"] == table) & df["case"].notna() & df["architecture"].isin(architectures)]
    evidence: Evidence = []
    for key, sub in groups(
        df, group_cols(df, {"table", "case", "method", "T", "L", "k", "alignment", "calibration"})
    ):
        ts = mean_by(sub[sub["quantity"] == "avg_timesteps"], "case")
        ts = {int(c): v for c, v in ts.items() if not math.isnan(v)}
        acc = {int(c): a for c, a in acc_by(sub[sub["quantity"] == "ann_acc"], "case").items()}
        acc = {c: a for c, a in acc.items() if not math.isnan(a.value)}
        others_t = {c: v for c, v in ts.items() if c != 4}
        values = {c: a.value for c, a in acc.items()}
        if 4 not in ts or 4 not in acc or not others_t or len(acc) < 2:
            evidence.append(
                {
                    "group": label(key),
                    "ok": None,
                    "reason": "needs case 4 and another case with both quantities",
                    "avg_timesteps": ts,
                    "ann_acc": values,
                }
            )
            continue
        fewest = math.isfinite(ts[4]) and all(ts[4] < v for v in others_t.values())
        hi_c, lo_c = max(values, key=values.get), min(values, key=values.get)
        test = pair_test(f"case {hi_c}", f"case {lo_c}", acc[hi_c], acc[lo_c], "within", acc_tol)
        verdict = combine(["holds" if fewest else "fails", test["verdict"]])
        evidence.append(
            {
                "group": label(key),
                "avg_timesteps": ts,
                "ann_acc": values,
                "case4_fewest": fewest,
                "acc_spread": test["diff"],
                "acc_within_tol": as_ok(test["verdict"]),
                "tests": [test],
                "verdict": verdict,
                "ok": as_ok(verdict),
            }
        )
    return conclude(
        "C2",
        title,
        evidence,
        not_run=f"no {table} group with case 4 and another case (avg_timesteps + ann_acc)",
        rule=f"acc_tol={acc_tol}",
        extra=lambda ev: "; " + "; ".join(_c2_group(e) for e in ev if "verdict" in e),
    )


def _c2_group(e: dict[str, Any]) -> str:
    ts_s = ", ".join(f"c{c}={fmt(v)}" for c, v in sorted(e["avg_timesteps"].items()))
    return (
        f"{e['group']}: T[{ts_s}] case4 fewest={e['case4_fewest']}, "
        f"ANN spread {describe(e['tests'][0])} ({e['tests'][0]['verdict']})"
    )


# ----------------------------------------------------------------------------- C3


def check_c3_alignment_ranking(
    results: pd.DataFrame,
    *,
    best: str = MAIN_POLICY,
    truncations: Sequence[str] = TRUNCATIONS,
    alignments: Sequence[str] = ALIGNMENTS,
    strict_worst: bool = False,
) -> ClaimResult:
    """C3: ``aver+aver`` is the best alignment and truncation the worst.

    Per (dataset, architecture, and any other context column) group of ``snn_acc`` rows
    whose alignment is in ``alignments``: the group needs ``best``, at least one truncation
    alignment and at least one other alignment.  Differences are paired on the test images
    when per-image records exist (the settings of one model), else unpaired or point
    (:func:`qac.uncertainty.accuracy_difference`).  Rule per group:

    * *best*: for every other alignment X, ``best - X`` "at least 0"
      (:func:`qac.uncertainty.verdict_greater`, not strict): holds when its 95 % interval
      lies at or above 0, fails when it lies below 0, inconclusive otherwise;
    * *worst*: ``min(non-truncation) - min(truncation)`` (the lowest of each, by point value)
      at least 0, the same rule; with ``strict_worst`` ``min(non-truncation) -
      max(truncation)`` above 0 (strict: a tie fails without intervals).

    The group's verdict combines its tests (fails if any fails, holds if all hold).
    """
    title = "aver+aver is the best temporal alignment, truncation the worst"
    df = prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["alignment"].isin(list(alignments))]
    evidence: Evidence = []
    for key, sub in groups(df, group_cols(df, {"alignment"})):
        accs = acc_by(sub, "alignment")
        trunc = {a: x for a, x in accs.items() if a in truncations}
        non_trunc = {a: x for a, x in accs.items() if a not in truncations}
        if best not in accs or not trunc or len(accs) < 3:
            continue
        tests = [
            pair_test(best, a, accs[best], x, "greater", strict=False)
            for a, x in accs.items()
            if a != best
        ]
        nt = min(non_trunc, key=lambda a: non_trunc[a].value)
        pick = max if strict_worst else min
        t = pick(trunc, key=lambda a: trunc[a].value)
        tests.append(pair_test(nt, t, non_trunc[nt], trunc[t], "greater", strict=strict_worst))
        best_v = combine(x["verdict"] for x in tests[:-1])
        verdict = combine([best_v, tests[-1]["verdict"]])
        evidence.append(
            {
                "group": label(key),
                **{a: x.value for a, x in accs.items()},
                "best_ok": as_ok(best_v),
                "worst_ok": as_ok(tests[-1]["verdict"]),
                "tests": tests,
                "verdict": verdict,
                "ok": as_ok(verdict),
            }
        )
    return conclude(
        "C3",
        title,
        evidence,
        not_run=f"no group with {best}, a truncation alignment and a third alignment",
        rule=f"strict_worst={strict_worst}",
    )


# ----------------------------------------------------------------------------- C4


def check_c4_temporal_scaling(
    results: pd.DataFrame,
    *,
    k_sat: int = 4,
    sat_tol: float = 0.1,
    dip_tol: float = 0.25,
) -> ClaimResult:
    """C4: accuracy rises with the timestep multiplier k and saturates by about ``k_sat``.

    Per group of ``snn_acc`` rows with ``k`` set (one curve per dataset/architecture and
    context), the group needs k = 1, k = ``k_sat`` and at least one k > ``k_sat``.  The
    differences are paired on the test images when per-image records exist (one model at
    several k).  Rule per group (each test as in :mod:`qac.uncertainty`):

    * *rises*: ``acc(k_sat) - acc(1)`` above 0 (holds when its 95 % interval lies above 0,
      fails when below, else inconclusive), and no step between consecutive k lowers
      accuracy by more than ``dip_tol`` pp (``verdict_not_lower``: a step fails when its
      whole interval lies below ``-dip_tol``, is inconclusive when part of it does; small
      dips such as Table 5's 67.20 -> 67.01 are tolerated and listed);
    * *saturates*: every ``acc(k) - acc(k_sat)`` for k > ``k_sat`` within ``sat_tol`` pp
      (``verdict_within``: holds when its interval lies inside [-sat_tol, sat_tol], fails
      when it lies entirely outside).
    """
    title = f"Accuracy rises with k and saturates by about {k_sat}T"
    df = prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["k"].notna()]
    evidence: Evidence = []
    for key, sub in groups(df, group_cols(df, {"k"})):
        accs = {int(k): a for k, a in acc_by(sub, "k").items()}
        ks = sorted(accs)
        if 1 not in accs or k_sat not in accs or not any(k > k_sat for k in ks):
            continue
        rise = pair_test(f"{k_sat}T", "1T", accs[k_sat], accs[1], "greater")
        steps = [
            pair_test(f"{b}T", f"{a}T", accs[b], accs[a], "not_lower", dip_tol)
            for a, b in zip(ks[:-1], ks[1:], strict=True)
        ]
        post = [
            pair_test(f"{k}T", f"{k_sat}T", accs[k], accs[k_sat], "within", sat_tol)
            for k in ks
            if k > k_sat
        ]
        rises = combine([rise["verdict"], *(s["verdict"] for s in steps)])
        saturates = combine(p["verdict"] for p in post)
        verdict = combine([rises, saturates])
        evidence.append(
            {
                "group": label(key),
                "acc_by_k": {k: a.value for k, a in accs.items()},
                "gain_1_to_ksat": rise["diff"],
                "dips": [f"{s['b']}->{s['a']} {s['diff']:+.2f}" for s in steps if s["diff"] < 0],
                "max_dev_after_ksat": max(abs(p["diff"]) for p in post),
                "rises": rises,
                "saturates": saturates,
                "tests": [rise, *steps, *post],
                "verdict": verdict,
                "ok": as_ok(verdict),
            }
        )
    return conclude(
        "C4",
        title,
        evidence,
        not_run=f"no curve with k=1, k={k_sat} and some k>{k_sat}",
        rule=f"k_sat={k_sat}, sat_tol={sat_tol}, dip_tol={dip_tol}",
        extra=lambda ev: _c4_dips(ev) + not_holding(ev),
    )


def _c4_dips(evidence: Evidence) -> str:
    dips = [f"{e['group']}: {', '.join(e['dips'])}" for e in evidence if e["dips"]]
    return "; dips: " + "; ".join(dips) if dips else ""


# ----------------------------------------------------------------------------- all

#: Claim id -> check function.
CLAIMS: dict[str, Callable[..., ClaimResult]] = {
    "C1": check_c1_ann_equivalence,
    "C2": check_c2_case4_fewest_timesteps,
    "C3": check_c3_alignment_ranking,
    "C4": check_c4_temporal_scaling,
    "C5": check_c5_qcfs_aver,
    "C6": check_c6_calibration,
    "C7": check_c7_qac_vs_qcfs,
}


def check_all(
    results: pd.DataFrame,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ClaimResult]:
    """Run C1-C7 over ``results``.

    Args:
        results: tidy results (same columns as the reference CSV, plus optional ``scale``
            and ``case``).
        options: per-claim keyword arguments, e.g. ``{"C4": {"dip_tol": 0.0}}``.
    """
    options = options or {}
    return [fn(results, **dict(options.get(cid, {}))) for cid, fn in CLAIMS.items()]
