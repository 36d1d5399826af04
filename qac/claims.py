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
(columns ``per_image``, ``n``, ``labels`` of :func:`qac.report.collect`) of the same test
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

The text-level statements of ``qac/reference/paper_claims.yaml`` are evaluated by
:func:`evaluate_check` / :func:`check_paper_claims`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from qac.reference import load_paper_claims, normalize_frame
from qac.uncertainty import (
    Accuracy,
    PerImage,
    accuracy_difference,
    combine,
    verdict_greater,
    verdict_not_lower,
    verdict_within,
)

__all__ = [
    "Status",
    "ClaimResult",
    "ALIGNMENTS",
    "TRUNCATIONS",
    "check_c1_ann_equivalence",
    "check_c2_case4_fewest_timesteps",
    "check_c3_alignment_ranking",
    "check_c4_temporal_scaling",
    "check_c5_qcfs_aver",
    "check_c6_calibration",
    "check_c7_qac_vs_qcfs",
    "CLAIMS",
    "check_all",
    "claims_markdown",
    "select_rows",
    "evaluate_check",
    "check_paper_claims",
]

Status = Literal["holds", "fails", "inconclusive", "not-run"]

#: The four temporal alignments of Table 4 (expansion + reduction).
ALIGNMENTS: tuple[str, ...] = ("repl+aver", "repl+trunc", "aver+trunc", "aver+aver")
#: Alignments that use truncation for temporal reduction.
TRUNCATIONS: tuple[str, ...] = ("repl+trunc", "aver+trunc")

#: Optional columns that separate otherwise identical experiments.
_CONTEXT_COLS: tuple[str, ...] = (
    "table",
    "dataset",
    "architecture",
    "method",
    "scale",
    "case",
    "T",
    "L",
    "k",
    "alignment",
    "calibration",
)


@dataclass
class ClaimResult:
    """Outcome of one claim check.

    Attributes:
        id: claim id (``C1`` ... ``C7`` or a ``paper_claims.yaml`` id).
        title: one-line statement of the claim.
        status: ``holds``, ``fails``, ``inconclusive`` or ``not-run`` (inputs missing).
        details: human-readable explanation with the key numbers.
        evidence: the numbers behind the verdict (one dict per compared item).
    """

    id: str
    title: str
    status: Status
    details: str
    evidence: pd.DataFrame | list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers


def _prep(results: pd.DataFrame) -> pd.DataFrame:
    """Normalise column types (adds missing standard columns as NA)."""
    df = normalize_frame(results)
    if "case" in df.columns:
        df["case"] = pd.to_numeric(df["case"], errors="coerce")
    return df


def _fmt(v: Any) -> str:
    """Compact number formatting for details strings."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def _clean(v: Any) -> Any:
    """Convert pandas/numpy scalars to plain Python (NA -> None) for evidence dicts."""
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        return v
    if hasattr(v, "item"):
        return v.item()
    return v


def _group_cols(df: pd.DataFrame, exclude: Iterable[str]) -> list[str]:
    """Context columns present in ``df`` that are not in ``exclude``."""
    ex = set(exclude)
    return [c for c in _CONTEXT_COLS if c in df.columns and c not in ex]


def _groups(df: pd.DataFrame, cols: Sequence[str]) -> Iterable[tuple[dict[str, Any], pd.DataFrame]]:
    """Group ``df`` by ``cols`` keeping NA keys; yields (key dict, sub-frame)."""
    if df.empty:
        return
    if not cols:
        yield {}, df
        return
    for key, sub in df.groupby(list(cols), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield {c: _clean(v) for c, v in zip(cols, key, strict=True)}, sub


def _label(key: Mapping[str, Any]) -> str:
    """Short label like ``cifar10/resnet20 L=4``."""
    parts = [str(key[c]) for c in ("dataset", "architecture") if key.get(c) is not None]
    extra = [
        f"{c}={key[c]}"
        for c in ("table", "scale", "case", "method", "L", "T", "k", "alignment", "calibration")
        if key.get(c) is not None
    ]
    return "/".join(parts) + (" " + " ".join(extra) if extra else "")


def _status(n_ok: int, n_total: int) -> Status:
    if n_total == 0:
        return "not-run"
    return "holds" if n_ok == n_total else "fails"


def _mean_by(sub: pd.DataFrame, col: str) -> dict[Any, float]:
    """Mean ``value`` per distinct ``col`` value (duplicates, e.g. seeds, are averaged)."""
    return {_clean(k): float(v) for k, v in sub.groupby(col, dropna=True)["value"].mean().items()}


def _accuracy_of(rows: pd.DataFrame) -> Accuracy:
    """The accuracy of rows sharing one key: one row (or identical copies) keeps its ``n`` and
    per-image record; several different rows (e.g. seeds) give their mean, without ``n``."""
    first = rows.iloc[0]
    distinct = rows.drop_duplicates(subset=[c for c in ("value", "per_image") if c in rows])
    if len(distinct) > 1:
        return Accuracy(float(rows["value"].astype(float).mean()))
    n, record = _clean(first.get("n")), _clean(first.get("per_image"))
    n = int(n) if n else None
    per_image = None
    if n and record:
        labels = _clean(first.get("labels"))
        labels = None if labels is None else str(labels)  # a CSV may read all-digit hex as int
        per_image = PerImage.from_json({"n": n, "correct": record, "labels": labels})
    return Accuracy(float(first["value"]), n, per_image)


def _acc_by(sub: pd.DataFrame, col: str) -> dict[Any, Accuracy]:
    """:func:`_accuracy_of` per distinct ``col`` value."""
    return {_clean(k): _accuracy_of(rows) for k, rows in sub.groupby(col, dropna=True)}


_RULES: dict[str, Callable[..., str]] = {
    "greater": verdict_greater,
    "not_lower": verdict_not_lower,
    "within": verdict_within,
}


def _test(
    a: str, b: str, acc_a: Accuracy, acc_b: Accuracy, rule: str, bound: float = 0.0, **kw: Any
) -> dict[str, Any]:
    """One comparison A - B: its difference, 95 % interval, method and verdict under ``rule``
    (``greater``: A - B > bound; ``not_lower``: A - B >= -bound; ``within``: |A - B| <= bound)."""
    d = accuracy_difference(acc_a, acc_b)
    verdict = _RULES[rule](d, bound, **kw)
    text = {
        "greater": f"A - B {'>' if kw.get('strict', True) else '>='} {bound:g}",
        "not_lower": f"A - B >= {-bound:g}",
        "within": f"abs(A - B) <= {bound:g}",
    }[rule]
    return {"a": a, "b": b, **d.as_dict(), "rule": text, "verdict": verdict}


def _describe(test: Mapping[str, Any]) -> str:
    """``A - B = +1.23 pp [-0.40, +2.90] (paired)``."""
    text = f"{test['a']} - {test['b']} = {test['diff']:+.2f} pp"
    if test["method"] != "point":
        text += f" [{test['ci_low']:+.2f}, {test['ci_high']:+.2f}]"
    return text + f" ({test['method']})"


def _ok(verdict: str) -> bool | None:
    """True / False for holds / fails, None for inconclusive."""
    return {"holds": True, "fails": False}.get(verdict)


def _overall(evidence: Sequence[Mapping[str, Any]]) -> Status:
    """The claim's status from its groups' verdicts (not-run without any)."""
    verdicts = [e["verdict"] for e in evidence if "verdict" in e]
    return combine(verdicts) if verdicts else "not-run"


def _tally(evidence: Sequence[Mapping[str, Any]]) -> str:
    """``2 hold, 1 fails, 3 inconclusive of 6 groups``."""
    verdicts = [e["verdict"] for e in evidence if "verdict" in e]
    counts = {v: verdicts.count(v) for v in ("holds", "fails", "inconclusive")}
    return (
        f"{counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} "
        f"inconclusive of {len(verdicts)} groups"
    )


def _not_holding(evidence: Sequence[Mapping[str, Any]]) -> str:
    """'; not holding: group (test, verdict); ...' for the groups that do not hold."""
    parts = []
    for e in evidence:
        if e.get("verdict") in (None, "holds"):
            continue
        bad = [t for t in e["tests"] if t["verdict"] != "holds"]
        parts.append(
            f"{e['group']} {e['verdict']} ("
            + ", ".join(f"{_describe(t)} {t['verdict']}" for t in bad)
            + ")"
        )
    return "; not holding: " + "; ".join(parts) if parts else ""


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
    df = _prep(results)
    if (df["table"] == table).any():
        df = df[df["table"] == table]
    snn = df[(df["quantity"] == "snn_acc") & df["alignment"].isin(list(alignments))]
    ann = df[df["quantity"] == "ann_acc"]
    evidence: list[dict[str, Any]] = []
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
                item[col] = _clean(row[col])
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
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = (
            f"no snn_acc rows with alignment in {list(alignments)} paired with an ann_acc row"
            + (f" ({skipped} unpaired)" if skipped else "")
        )
    else:
        bad = [e for e in evidence if e.get("ok") is False]
        details = f"{n_ok}/{n_total} SNN/ANN pairs equal within {tol} pp"
        if bad:
            worst = max(bad, key=lambda e: abs(e["diff"]))
            details += (
                f"; largest gap {worst['dataset']}/{worst['architecture']}: "
                f"SNN {_fmt(worst['snn_acc'])} vs ANN {_fmt(worst['ann_acc'])}"
            )
        if skipped:
            details += f"; {skipped} rows without a unique ANN match skipped"
    return ClaimResult("C1", title, status, details, evidence)


# ----------------------------------------------------------------------------- C2


# The architectures of the paper's Fig. 2 / Fig. 11 (Sec. 5.1): C2 is the claim about them only.
FIG2_ARCHITECTURES = ("resnet20", "vgg16")


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
    df = _prep(results)
    if "case" not in df.columns:
        return ClaimResult("C2", title, "not-run", "results have no 'case' column", [])
    df = df[(df["table"] == table) & df["case"].notna() & df["architecture"].isin(architectures)]
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(
        df, _group_cols(df, {"table", "case", "method", "T", "L", "k", "alignment", "calibration"})
    ):
        ts = _mean_by(sub[sub["quantity"] == "avg_timesteps"], "case")
        ts = {int(c): v for c, v in ts.items() if not math.isnan(v)}
        acc = {int(c): a for c, a in _acc_by(sub[sub["quantity"] == "ann_acc"], "case").items()}
        acc = {c: a for c, a in acc.items() if not math.isnan(a.value)}
        others_t = {c: v for c, v in ts.items() if c != 4}
        values = {c: a.value for c, a in acc.items()}
        if 4 not in ts or 4 not in acc or not others_t or len(acc) < 2:
            evidence.append(
                {
                    "group": _label(key),
                    "ok": None,
                    "reason": "needs case 4 and another case with both quantities",
                    "avg_timesteps": ts,
                    "ann_acc": values,
                }
            )
            continue
        fewest = math.isfinite(ts[4]) and all(ts[4] < v for v in others_t.values())
        hi_c, lo_c = max(values, key=values.get), min(values, key=values.get)
        test = _test(f"case {hi_c}", f"case {lo_c}", acc[hi_c], acc[lo_c], "within", acc_tol)
        verdict = combine(["holds" if fewest else "fails", test["verdict"]])
        evidence.append(
            {
                "group": _label(key),
                "avg_timesteps": ts,
                "ann_acc": values,
                "case4_fewest": fewest,
                "acc_spread": test["diff"],
                "acc_within_tol": _ok(test["verdict"]),
                "tests": [test],
                "verdict": verdict,
                "ok": _ok(verdict),
            }
        )
    status = _overall(evidence)
    if status == "not-run":
        details = f"no {table} group with case 4 and another case (avg_timesteps + ann_acc)"
    else:
        parts = []
        for e in evidence:
            if "verdict" not in e:
                continue
            ts_s = ", ".join(f"c{c}={_fmt(v)}" for c, v in sorted(e["avg_timesteps"].items()))
            parts.append(
                f"{e['group']}: T[{ts_s}] case4 fewest={e['case4_fewest']}, "
                f"ANN spread {_describe(e['tests'][0])} ({e['tests'][0]['verdict']})"
            )
        details = f"{_tally(evidence)} (acc_tol={acc_tol}); " + "; ".join(parts)
    return ClaimResult("C2", title, status, details, evidence)


# ----------------------------------------------------------------------------- C3


def check_c3_alignment_ranking(
    results: pd.DataFrame,
    *,
    best: str = "aver+aver",
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
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["alignment"].isin(list(alignments))]
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(df, _group_cols(df, {"alignment"})):
        accs = _acc_by(sub, "alignment")
        trunc = {a: x for a, x in accs.items() if a in truncations}
        non_trunc = {a: x for a, x in accs.items() if a not in truncations}
        if best not in accs or not trunc or len(accs) < 3:
            continue
        tests = [
            _test(best, a, accs[best], x, "greater", strict=False)
            for a, x in accs.items()
            if a != best
        ]
        nt = min(non_trunc, key=lambda a: non_trunc[a].value)
        pick = max if strict_worst else min
        t = pick(trunc, key=lambda a: trunc[a].value)
        tests.append(_test(nt, t, non_trunc[nt], trunc[t], "greater", strict=strict_worst))
        best_v = combine(x["verdict"] for x in tests[:-1])
        verdict = combine([best_v, tests[-1]["verdict"]])
        evidence.append(
            {
                "group": _label(key),
                **{a: x.value for a, x in accs.items()},
                "best_ok": _ok(best_v),
                "worst_ok": _ok(tests[-1]["verdict"]),
                "tests": tests,
                "verdict": verdict,
                "ok": _ok(verdict),
            }
        )
    status = _overall(evidence)
    if status == "not-run":
        details = f"no group with {best}, a truncation alignment and a third alignment"
    else:
        details = f"{_tally(evidence)} (strict_worst={strict_worst})" + _not_holding(evidence)
    return ClaimResult("C3", title, status, details, evidence)


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
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["k"].notna()]
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(df, _group_cols(df, {"k"})):
        accs = {int(k): a for k, a in _acc_by(sub, "k").items()}
        ks = sorted(accs)
        if 1 not in accs or k_sat not in accs or not any(k > k_sat for k in ks):
            continue
        rise = _test(f"{k_sat}T", "1T", accs[k_sat], accs[1], "greater")
        steps = [
            _test(f"{b}T", f"{a}T", accs[b], accs[a], "not_lower", dip_tol)
            for a, b in zip(ks[:-1], ks[1:], strict=True)
        ]
        post = [
            _test(f"{k}T", f"{k_sat}T", accs[k], accs[k_sat], "within", sat_tol)
            for k in ks
            if k > k_sat
        ]
        rises = combine([rise["verdict"], *(s["verdict"] for s in steps)])
        saturates = combine(p["verdict"] for p in post)
        verdict = combine([rises, saturates])
        evidence.append(
            {
                "group": _label(key),
                "acc_by_k": {k: a.value for k, a in accs.items()},
                "gain_1_to_ksat": rise["diff"],
                "dips": [f"{s['b']}->{s['a']} {s['diff']:+.2f}" for s in steps if s["diff"] < 0],
                "max_dev_after_ksat": max(abs(p["diff"]) for p in post),
                "rises": rises,
                "saturates": saturates,
                "tests": [rise, *steps, *post],
                "verdict": verdict,
                "ok": _ok(verdict),
            }
        )
    status = _overall(evidence)
    if status == "not-run":
        details = f"no curve with k=1, k={k_sat} and some k>{k_sat}"
    else:
        details = f"{_tally(evidence)} (k_sat={k_sat}, sat_tol={sat_tol}, dip_tol={dip_tol})"
        dips = [f"{e['group']}: {', '.join(e['dips'])}" for e in evidence if e["dips"]]
        if dips:
            details += "; dips: " + "; ".join(dips)
        details += _not_holding(evidence)
    return ClaimResult("C4", title, status, details, evidence)


# ----------------------------------------------------------------------------- C5


def check_c5_qcfs_aver(
    results: pd.DataFrame,
    *,
    small_T: Sequence[int] = (2, 3, 4),
    min_gain: float = 0.0,
    t1_tol: float = 0.0,
    require_t1: bool = True,
    base: str = "QCFS",
    aver: str = "QCFS+aver",
) -> ClaimResult:
    """C5: QCFS+aver beats QCFS at small T and equals it at T = 1.

    ``snn_acc`` rows of methods ``base`` and ``aver`` are paired on (dataset, architecture,
    L, T and context); the difference ``aver - base`` is paired on the test images when both
    carry per-image records (one model, two simulations).  Rule:

    * T in ``small_T``: ``aver - base`` above ``min_gain`` (holds when its 95 % interval lies
      above ``min_gain``, fails when below, inconclusive otherwise; without an interval a tie
      fails);
    * T = 1: exact (at T = 1 there is nothing to align, so this is an identity, not a
      sampling question): holds when ``|aver - base| <= t1_tol``, else fails.

    Needs at least one small-T pair and, with ``require_t1``, one T = 1 pair.  Pairs at
    larger T are reported (``counts=False``) but do not affect the status - the paper's
    "consistently outperforms" at every T is a separate text claim
    (``sec7.6-consistently-outperforms``).
    """
    title = "QCFS+aver beats QCFS at small T (2-4) and equals it at T=1"
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["method"].isin([base, aver]) & df["T"].notna()]
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(df, _group_cols(df, {"method"})):
        accs = _acc_by(sub, "method")
        if base not in accs or aver not in accs:
            continue
        T = int(key["T"])
        test = _test(aver, base, accs[aver], accs[base], "greater", min_gain)
        item = {
            "group": _label({k: v for k, v in key.items() if k != "T"}),
            "T": T,
            base: accs[base].value,
            aver: accs[aver].value,
            "diff": test["diff"],
        }
        if T in small_T:
            item.update(kind="small-T", counts=True, tests=[test], verdict=test["verdict"])
        elif T == 1:
            exact = "holds" if abs(test["diff"]) <= t1_tol + 1e-9 else "fails"
            test = {**test, "rule": f"exact |diff| <= {t1_tol}", "verdict": exact}
            item.update(kind="T=1", counts=True, tests=[test], verdict=exact)
        else:
            tie = abs(test["diff"]) <= 1e-9
            item.update(kind="larger-T", counts=False, ok=test["diff"] > 1e-9, tie=tie)
            item["info_verdict"] = test["verdict"]
        if item["counts"]:
            item["ok"] = _ok(item["verdict"])
        evidence.append(item)
    counted = [e for e in evidence if e["counts"]]
    n_small = sum(e["kind"] == "small-T" for e in evidence)
    n_t1 = sum(e["kind"] == "T=1" for e in evidence)
    if n_small == 0 or (require_t1 and n_t1 == 0):
        miss = "small-T" if n_small == 0 else "T=1"
        return ClaimResult("C5", title, "not-run", f"no {base}/{aver} pairs at {miss}", evidence)
    status = _overall(counted)
    details = (
        f"small T (gain > {min_gain}): {_tally([e for e in counted if e['kind'] == 'small-T'])}; "
        f"T=1 (equal within {t1_tol}): {_tally([e for e in counted if e['kind'] == 'T=1'])}"
    )
    bad = [e for e in counted if e["verdict"] != "holds"]
    if bad:
        details += "; not holding: " + "; ".join(
            f"{e['group']} T={e['T']}: {_fmt(e[base])} vs {_fmt(e[aver])} "
            f"({_describe(e['tests'][0])}, {e['verdict']})"
            for e in bad
        )
    larger = [e for e in evidence if e["kind"] == "larger-T"]
    larger_bad = [e for e in larger if not e["ok"]]
    if larger:
        details += (
            f"; info (not counted): at larger T {aver} <= {base} in "
            f"{len(larger_bad)}/{len(larger)} pairs"
        )
        if larger_bad:
            details += (
                " ("
                + "; ".join(
                    f"{e['group']} T={e['T']} " + ("tie" if e["tie"] else f"{e['diff']:+.2f}")
                    for e in larger_bad
                )
                + ")"
            )
    return ClaimResult("C5", title, status, details, evidence)


# ----------------------------------------------------------------------------- C6


def check_c6_calibration(results: pd.DataFrame, *, tol: float = 0.0) -> ClaimResult:
    """C6: calibration does not lower accuracy (``base+cal`` vs ``base``).

    ``snn_acc`` rows with ``calibration`` ``base`` and ``base+cal`` and no ``alignment``
    (the main policy; Table 3's averaging-everywhere columns are not the paper's claim) are
    paired on dataset, architecture and context; ``base+cal - base`` is paired on the test
    images when both carry per-image records.  Rule (:func:`qac.uncertainty.
    verdict_not_lower`): fails when the difference's whole 95 % interval lies below
    ``-tol``, holds when none of it does, inconclusive otherwise (without an interval:
    holds when ``base+cal >= base - tol``).  Not-run when no pair exists.
    """
    title = "Calibration (base+cal) does not lower accuracy vs base"
    df = _prep(results)
    df = df[
        (df["quantity"] == "snn_acc")
        & df["calibration"].isin(["base", "base+cal"])
        & df["alignment"].isna()
    ]
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(df, _group_cols(df, {"calibration"})):
        accs = _acc_by(sub, "calibration")
        if "base" not in accs or "base+cal" not in accs:
            continue
        test = _test("base+cal", "base", accs["base+cal"], accs["base"], "not_lower", tol)
        evidence.append(
            {
                "group": _label(key),
                "base": accs["base"].value,
                "base+cal": accs["base+cal"].value,
                "diff": test["diff"],
                "tests": [test],
                "verdict": test["verdict"],
                "ok": _ok(test["verdict"]),
            }
        )
    status = _overall(evidence)
    if status == "not-run":
        details = "no base / base+cal pair"
    else:
        details = f"{_tally(evidence)} (base+cal >= base - {tol})"
        bad = [e for e in evidence if e["verdict"] != "holds"]
        if bad:
            details += "; lower after calibration: " + "; ".join(
                f"{e['group']} {_fmt(e['base'])} -> {_fmt(e['base+cal'])} "
                f"({_describe(e['tests'][0])}, {e['verdict']})"
                for e in bad
            )
    return ClaimResult("C6", title, status, details, evidence)


# ----------------------------------------------------------------------------- C7


def check_c7_qac_vs_qcfs(
    results: pd.DataFrame,
    *,
    margin: float = 0.0,
    max_t_ratio: float | None = None,
    qac: str = "QAC",
    qcfs: str = "QCFS",
) -> ClaimResult:
    """C7: QAC beats QCFS at a comparable average number of timesteps.

    For every QAC result - an ``avg_timesteps`` and an ``snn_acc`` row of method ``qac`` in
    the same (table, dataset, architecture, context) - "comparable" QCFS is the ``snn_acc``
    of method ``qcfs`` for the same dataset and architecture (and ``scale``, if present) at
    the **smallest integer T >= QAC's average T**, from any table; when several rows share
    that T (different tables or L) the best one is used (strongest baseline).  With
    ``max_t_ratio`` set, QCFS settings with T > ratio x avg T do not count as comparable.
    Rule per pair: ``QAC - QCFS`` above ``margin`` - holds when its 95 % interval (paired on
    the test images when both models carry per-image records of the same images) lies above
    ``margin``, fails when below, inconclusive otherwise; without an interval a tie fails.
    Identical QAC results reported in several tables are evaluated once.
    """
    title = "QAC beats QCFS at a comparable average timestep count"
    df = _prep(results)
    qac_rows = df[(df["method"] == qac) & df["quantity"].isin(["avg_timesteps", "snn_acc"])]
    qcfs_rows = df[(df["method"] == qcfs) & (df["quantity"] == "snn_acc") & df["T"].notna()]
    match_cols = ["dataset", "architecture"] + (["scale"] if "scale" in df.columns else [])
    seen: set[tuple[Any, ...]] = set()
    evidence: list[dict[str, Any]] = []
    for key, sub in _groups(qac_rows, _group_cols(qac_rows, {"T", "k", "method"})):
        q = _mean_by(sub, "quantity")
        if "avg_timesteps" not in q or "snn_acc" not in q:
            continue
        avg_t = q["avg_timesteps"]
        acc = _accuracy_of(sub[sub["quantity"] == "snn_acc"])
        ident = tuple(key.get(c) for c in match_cols) + (round(avg_t, 6), round(acc.value, 6))
        if ident in seen:
            continue
        seen.add(ident)
        cand = qcfs_rows
        for c in match_cols:
            cand = cand[cand[c].isna()] if key.get(c) is None else cand[cand[c] == key[c]]
        cand = cand[cand["T"].astype(float) >= avg_t - 1e-9]
        if max_t_ratio is not None:
            cand = cand[cand["T"].astype(float) <= max_t_ratio * avg_t + 1e-9]
        item = {"group": _label(key), "qac_avg_T": avg_t, "qac_acc": acc.value}
        if cand.empty or not math.isfinite(avg_t):
            item.update(ok=None, reason="no comparable QCFS setting")
            evidence.append(item)
            continue
        t_min = int(cand["T"].min())
        at = cand[cand["T"] == t_min]
        best = at.loc[[at["value"].idxmax()]]
        test = _test(qac, f"{qcfs} T={t_min}", acc, _accuracy_of(best), "greater", margin)
        item.update(
            qcfs_T=t_min,
            qcfs_acc=float(best["value"].iloc[0]),
            qcfs_table=_clean(best["table"].iloc[0]),
            qcfs_L=_clean(best["L"].iloc[0]),
            diff=test["diff"],
            tests=[test],
            verdict=test["verdict"],
            ok=_ok(test["verdict"]),
        )
        evidence.append(item)
    status = _overall(evidence)
    if status == "not-run":
        details = "no QAC (avg_timesteps + snn_acc) result with a comparable QCFS setting"
    else:
        details = f"{_tally(evidence)} (QAC vs QCFS at the smallest T >= avg T)"
        bad = [e for e in evidence if e.get("verdict") not in (None, "holds")]
        if bad:
            details += "; not holding: " + "; ".join(
                f"{e['group']}: QAC {_fmt(e['qac_acc'])} @ {_fmt(e['qac_avg_T'])} vs QCFS "
                f"{_fmt(e['qcfs_acc'])} @ T={e['qcfs_T']} ({e['qcfs_table']}): "
                f"{_describe(e['tests'][0])}, {e['verdict']}"
                for e in bad
            )
    return ClaimResult("C7", title, status, details, evidence)


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


def claims_markdown(results: Sequence[ClaimResult], heading: str = "Claims") -> str:
    """Render claim results as Markdown: a summary table, a details list, and per claim the
    comparisons behind its verdict (one row per test: A - B in pp, its 95 % interval in two
    columns, the method and the verdict)."""
    icon = {"holds": "holds", "fails": "**FAILS**", "inconclusive": "inconclusive"}
    lines = [f"## {heading}", "", "| id | claim | status |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.id} | {r.title} | {icon.get(r.status, r.status)} |")
    lines += [
        "",
        "*inconclusive*: a 95 % interval of an accuracy difference contains the claim's "
        "boundary, so this run cannot tell. Intervals are paired on the test images (exact "
        "McNemar) where both accuracies carry per-image records, unpaired (Newcombe) where "
        "only the test-set size is known, and absent (point) otherwise.",
        "",
    ]
    for r in results:
        details = r.details.replace("\n", " ")
        lines.append(f"- **{r.id}** ({r.status}): {details}")
    lines.append("")
    for r in results:
        lines += _tests_markdown(r)
    return "\n".join(lines)


def _tests_markdown(r: ClaimResult) -> list[str]:
    evidence = r.evidence if isinstance(r.evidence, list) else []
    rows = [(e, t) for e in evidence if isinstance(e, dict) for t in e.get("tests", [])]
    if not rows:
        return []
    out = [
        f"### {r.id}: {r.status}",
        "",
        "| group | A - B | diff (pp) | 95 % low | 95 % high | method | p (McNemar) | rule | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e, t in rows:
        group = e["group"] + (f" T={e['T']}" if "T" in e else "")
        lo, hi = ("", "") if t["method"] == "point" else (_pp(t["ci_low"]), _pp(t["ci_high"]))
        p = f"{t['p_mcnemar']:.3g}" if t.get("p_mcnemar") is not None else ""
        out.append(
            f"| {group} | {t['a']} - {t['b']} | {_pp(t['diff'])} | {lo} | {hi} | "
            f"{t['method']} | {p} | {t['rule']} | {t['verdict']} |"
        )
    return [*out, ""]


def _pp(v: float) -> str:
    return f"{v:+.2f}"


# ----------------------------------------------------------------------------- text claims

_OPS: dict[str, Callable[[float, float, float], bool]] = {
    "==": lambda a, b, tol: a == b or abs(a - b) <= tol,
    "!=": lambda a, b, tol: not (a == b or abs(a - b) <= tol),
    ">": lambda a, b, tol: a > b,
    ">=": lambda a, b, tol: a >= b,
    "<": lambda a, b, tol: a < b,
    "<=": lambda a, b, tol: a <= b,
}


def _match_series(s: pd.Series, want: Any) -> pd.Series:
    """Boolean mask: cells of ``s`` equal to ``want`` (a scalar or a list of alternatives).

    Numbers are compared numerically (so ``T: 4`` matches ``4``, ``4.0`` and ``"4"``),
    strings exactly; missing cells never match a non-``None`` want.
    """
    wants = list(want) if isinstance(want, list | tuple | set) else [want]
    numeric = [w for w in wants if isinstance(w, int | float) and not isinstance(w, bool)]
    textual = [
        str(w) for w in wants if not (isinstance(w, int | float) and not isinstance(w, bool))
    ]
    mask = pd.Series(False, index=s.index)
    if numeric:
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        mask |= num.isin([float(w) for w in numeric]).to_numpy()
    if textual:
        mask |= s.astype("object").isin(textual).to_numpy()
    return mask


def select_rows(df: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of ``df`` matching ``spec`` ({column: scalar | list | None}).

    A list means "any of"; ``None`` means "missing".  A column absent from ``df`` matches
    only ``None``.
    """
    mask = pd.Series(True, index=df.index)
    for col, want in spec.items():
        if col not in df.columns:
            if want is None:
                continue
            return df.iloc[0:0]
        if want is None:
            mask &= df[col].isna().to_numpy()
        else:
            mask &= _match_series(df[col], want).to_numpy()
    return df[mask]


def _values(df: pd.DataFrame, column: str) -> list[float]:
    return [float(v) for v in df[column].dropna()]


def _stat(values: Sequence[float], stat: str) -> float:
    if stat == "min":
        return min(values)
    if stat == "max":
        return max(values)
    if stat == "mean":
        return sum(values) / len(values)
    raise ValueError(f"unknown stat {stat!r}")


def _apply(
    op: str, values: Sequence[float], stat: str, expected: float, tol: float
) -> tuple[bool, str]:
    """Apply ``op`` to a statistic of ``values`` (or to all, for ``stat='all'``)."""
    cmp = _OPS[op]
    if stat == "all":
        ok = all(cmp(v, expected, tol) for v in values)
        return ok, f"all of [{', '.join(_fmt(v) for v in values)}] {op} {_fmt(expected)}"
    s = _stat(values, stat)
    return cmp(s, expected, tol), f"{stat} = {_fmt(s)} {op} {_fmt(expected)}"


def evaluate_check(
    check: Mapping[str, Any], df: pd.DataFrame
) -> tuple[Status, str, list[dict[str, Any]]]:
    """Evaluate one machine-checkable form from ``paper_claims.yaml`` on ``df``.

    See the header of ``paper_claims.yaml`` for the kinds.  Returns ``(status, details,
    evidence)``; a selection that matches nothing (or, for ``value``/``compare``, more than
    one distinct number) gives ``not-run``.
    """
    kind = check.get("kind", "none")
    op = check.get("op", "==")
    expected = float(check.get("expected", 0.0))
    tol = float(check.get("tol", 1e-6))
    column = check.get("column", "value")
    if kind == "none":
        return "not-run", f"not machine-checkable: {check.get('reason', 'figure only')}", []
    if kind == "claim":
        res = CLAIMS[check["claim"]](df, **dict(check.get("options", {})))
        return res.status, f"{res.id}: {res.details}", [{"claim": res.id, "status": res.status}]
    if kind == "all_of":
        parts = [evaluate_check(c, df) for c in check["checks"]]
        statuses = [p[0] for p in parts]
        details = " | ".join(f"[{s}] {d}" for s, d, _ in parts)
        evidence = [e for _, _, ev in parts for e in ev]
        for status in ("fails", "not-run", "inconclusive"):
            if status in statuses:
                return status, details, evidence
        return "holds", details, evidence
    if kind in ("value", "stat"):
        rows = select_rows(df, check["select"])
        vals = _values(rows, column)
        if not vals:
            return "not-run", f"no rows for {dict(check['select'])}", []
        if kind == "value":
            distinct = sorted(set(vals))
            if len(distinct) != 1:
                return "not-run", f"{len(distinct)} distinct values for {dict(check['select'])}", []
            vals = distinct
            stat = "all"
        else:
            stat = check.get("stat", "all")
        ok, desc = _apply(op, vals, stat, expected, tol)
        return (
            ("holds" if ok else "fails"),
            desc,
            [{"select": dict(check["select"]), "values": vals}],
        )
    if kind == "compare":
        left = sorted(set(_values(select_rows(df, check["left"]), column)))
        right = sorted(set(_values(select_rows(df, check["right"]), column)))
        if len(left) != 1 or len(right) != 1:
            return "not-run", f"need one left and one right value, got {left} / {right}", []
        d = left[0] - right[0]
        ok = _OPS[op](d, expected, tol)
        desc = f"{_fmt(left[0])} - {_fmt(right[0])} = {_fmt(d)} {op} {_fmt(expected)}"
        return ("holds" if ok else "fails"), desc, [{"left": left[0], "right": right[0], "diff": d}]
    if kind == "paired_diff":
        on = list(check["on"])
        left = select_rows(df, check["left"])
        right = select_rows(df, check["right"])
        if left.empty or right.empty:
            return "not-run", "no rows on one side", []
        lg = left.groupby(on, dropna=False)[column].mean()
        rg = right.groupby(on, dropna=False)[column].mean()
        common = lg.index.intersection(rg.index)
        if len(common) == 0:
            return "not-run", f"no pairs on {on}", []
        diffs = [(idx, float(lg[idx]) - float(rg[idx])) for idx in common]
        ok, desc = _apply(op, [d for _, d in diffs], check.get("stat", "all"), expected, tol)
        evidence = [
            {
                **dict(zip(on, idx if isinstance(idx, tuple) else (idx,), strict=True)),
                "left": float(lg[idx]),
                "right": float(rg[idx]),
                "diff": d,
            }
            for idx, d in diffs
        ]
        return ("holds" if ok else "fails"), f"{len(diffs)} pairs: {desc}", evidence
    raise ValueError(f"unknown check kind {kind!r}")


def check_paper_claims(
    df: pd.DataFrame | None = None,
    claims: Sequence[Mapping[str, Any]] | None = None,
    *,
    applies_to: Sequence[str] = ("paper", "both", "results"),
) -> list[ClaimResult]:
    """Evaluate the statements of ``paper_claims.yaml`` on ``df``.

    Args:
        df: frame to check; defaults to the paper's own reference numbers.
        claims: claim dicts; defaults to :func:`qac.reference.load_paper_claims`.
        applies_to: only claims whose ``applies_to`` is listed are evaluated.
    """
    if df is None:
        from qac.reference import load_reference

        df = load_reference()
    frame = _prep(df)
    out = []
    for c in claims if claims is not None else load_paper_claims():
        if c.get("applies_to", "both") not in applies_to:
            continue
        status, details, evidence = evaluate_check(c.get("check", {"kind": "none"}), frame)
        title = f"[{c.get('section', '?')}] {c.get('quote', '')}"
        out.append(ClaimResult(str(c["id"]), title, status, details, evidence))
    return out
