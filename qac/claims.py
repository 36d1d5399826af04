"""The paper's qualitative claims as executable checks.

Every check takes a tidy results frame with the columns of the reference CSV
(``table, dataset, architecture, method, quantity, T, L, k, alignment, calibration, value,
unit, note``; optionally ``scale`` and ``case``) and returns a :class:`ClaimResult` whose
``status`` is ``"holds"``, ``"fails"`` or ``"not-run"`` (inputs missing - never ``"holds"``),
with the numbers behind the verdict in ``evidence``.

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

Status = Literal["holds", "fails", "not-run"]

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
        status: ``holds``, ``fails`` or ``not-run`` (inputs missing).
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


# ----------------------------------------------------------------------------- C1


def check_c1_ann_equivalence(
    results: pd.DataFrame,
    *,
    alignments: Sequence[str] = ("aver+aver+aver",),
    tol: float = 0.0,
) -> ClaimResult:
    """C1: the SNN with averaging alignment at every boundary equals its quantized ANN.

    Every ``snn_acc`` row whose ``alignment`` is in ``alignments`` is paired with the
    ``ann_acc`` row of the same dataset and architecture (narrowed, where that leaves a
    candidate, by ``scale``, ``case``, ``method``, ``table``, ``L``).  The claim holds when
    ``|snn - ann| <= tol`` (percentage points; default exact, plus 1e-9 float slack) for
    every pair.  Pairs whose ANN match is missing or ambiguous are reported and skipped.
    """
    title = "SNN with averaging alignment everywhere equals its quantized ANN"
    df = _prep(results)
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
    with a ``case`` column (1-4) and quantities
    ``avg_timesteps`` (``inf`` allowed, e.g. case 3) and ``ann_acc``.  Per (dataset,
    architecture[, scale]) group the claim needs case 4 and at least one other case with
    both quantities.  It holds for a group when case 4's average T is finite and strictly
    below every other case's (``inf`` counts as larger) and the spread max - min of the
    ANN accuracies over all cases is <= ``acc_tol`` pp.
    """
    title = "Case 4 gives the fewest avg. timesteps with ANN accuracy within 1% of other cases"
    df = _prep(results)
    if "case" not in df.columns:
        return ClaimResult("C2", title, "not-run", "results have no 'case' column", [])
    df = df[(df["table"] == table) & df["case"].notna() & df["architecture"].isin(architectures)]
    evidence: list[dict[str, Any]] = []
    n_ok = n_total = 0
    for key, sub in _groups(
        df, _group_cols(df, {"table", "case", "method", "T", "L", "k", "alignment", "calibration"})
    ):
        ts = _mean_by(sub[sub["quantity"] == "avg_timesteps"], "case")
        acc = _mean_by(sub[sub["quantity"] == "ann_acc"], "case")
        ts = {int(c): v for c, v in ts.items() if not math.isnan(v)}
        acc = {int(c): v for c, v in acc.items() if not math.isnan(v)}
        others_t = {c: v for c, v in ts.items() if c != 4}
        if 4 not in ts or 4 not in acc or not others_t or len(acc) < 2:
            evidence.append(
                {
                    "group": _label(key),
                    "ok": None,
                    "reason": "needs case 4 and another case with both quantities",
                    "avg_timesteps": ts,
                    "ann_acc": acc,
                }
            )
            continue
        fewest = math.isfinite(ts[4]) and all(ts[4] < v for v in others_t.values())
        spread = max(acc.values()) - min(acc.values())
        within = spread <= acc_tol + 1e-9
        ok = fewest and within
        n_total += 1
        n_ok += int(ok)
        evidence.append(
            {
                "group": _label(key),
                "avg_timesteps": ts,
                "ann_acc": acc,
                "case4_fewest": fewest,
                "acc_spread": spread,
                "acc_within_tol": within,
                "ok": ok,
            }
        )
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = f"no {table} group with case 4 and another case (avg_timesteps + ann_acc)"
    else:
        parts = []
        for e in evidence:
            if e.get("ok") is None:
                continue
            ts_s = ", ".join(f"c{c}={_fmt(v)}" for c, v in sorted(e["avg_timesteps"].items()))
            parts.append(
                f"{e['group']}: T[{ts_s}] case4 fewest={e['case4_fewest']}, "
                f"ANN spread {_fmt(e['acc_spread'])} pp"
            )
        details = f"{n_ok}/{n_total} groups hold (acc_tol={acc_tol}); " + "; ".join(parts)
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
    alignment and at least one other alignment.  It holds when ``best`` is >= every other
    alignment and the worst accuracy belongs to a truncation alignment
    (``min(trunc) <= min(non-trunc)``).  With ``strict_worst`` every truncation alignment
    must be below every non-truncation alignment (``max(trunc) < min(non-trunc)``).
    """
    title = "aver+aver is the best temporal alignment, truncation the worst"
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["alignment"].isin(list(alignments))]
    evidence: list[dict[str, Any]] = []
    n_ok = n_total = 0
    for key, sub in _groups(df, _group_cols(df, {"alignment"})):
        vals = _mean_by(sub, "alignment")
        trunc = {a: v for a, v in vals.items() if a in truncations}
        non_trunc = {a: v for a, v in vals.items() if a not in truncations}
        if best not in vals or not trunc or len(vals) < 3:
            continue
        others = {a: v for a, v in vals.items() if a != best}
        best_ok = vals[best] >= max(others.values())
        if strict_worst:
            worst_ok = max(trunc.values()) < min(non_trunc.values())
        else:
            worst_ok = min(trunc.values()) <= min(non_trunc.values())
        ok = best_ok and worst_ok
        n_total += 1
        n_ok += int(ok)
        evidence.append(
            {"group": _label(key), **vals, "best_ok": best_ok, "worst_ok": worst_ok, "ok": ok}
        )
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = f"no group with {best}, a truncation alignment and a third alignment"
    else:
        bad = [
            f"{e['group']} (best_ok={e['best_ok']}, worst_ok={e['worst_ok']})"
            for e in evidence
            if not e["ok"]
        ]
        details = f"{n_ok}/{n_total} groups hold (strict_worst={strict_worst})"
        if bad:
            details += "; fails: " + "; ".join(bad)
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
    context), the group needs k = 1, k = ``k_sat`` and at least one k > ``k_sat``.  Holds when

    * *rises*: ``acc(k_sat) > acc(1)`` and no step between consecutive k drops by more than
      ``dip_tol`` pp (small dips such as Table 5's 67.20 -> 67.01 are tolerated and listed);
    * *saturates*: every ``acc(k)`` for k > ``k_sat`` is within ``sat_tol`` pp of
      ``acc(k_sat)``.
    """
    title = f"Accuracy rises with k and saturates by about {k_sat}T"
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["k"].notna()]
    evidence: list[dict[str, Any]] = []
    n_ok = n_total = 0
    for key, sub in _groups(df, _group_cols(df, {"k"})):
        acc = {int(k): v for k, v in _mean_by(sub, "k").items()}
        ks = sorted(acc)
        if 1 not in acc or k_sat not in acc or not any(k > k_sat for k in ks):
            continue
        steps = [(a, b, acc[b] - acc[a]) for a, b in zip(ks[:-1], ks[1:], strict=True)]
        dips = [(a, b, d) for a, b, d in steps if d < 0]
        rises = acc[k_sat] > acc[1] and all(d >= -dip_tol - 1e-9 for _, _, d in steps)
        post = [abs(acc[k] - acc[k_sat]) for k in ks if k > k_sat]
        saturates = max(post) <= sat_tol + 1e-9
        ok = rises and saturates
        n_total += 1
        n_ok += int(ok)
        evidence.append(
            {
                "group": _label(key),
                "acc_by_k": acc,
                "gain_1_to_ksat": acc[k_sat] - acc[1],
                "dips": [f"{a}T->{b}T {d:+.2f}" for a, b, d in dips],
                "max_dev_after_ksat": max(post),
                "rises": rises,
                "saturates": saturates,
                "ok": ok,
            }
        )
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = f"no curve with k=1, k={k_sat} and some k>{k_sat}"
    else:
        details = (
            f"{n_ok}/{n_total} curves hold (k_sat={k_sat}, sat_tol={sat_tol}, dip_tol={dip_tol})"
        )
        dips = [f"{e['group']}: {', '.join(e['dips'])}" for e in evidence if e["dips"]]
        if dips:
            details += "; dips: " + "; ".join(dips)
        bad = [e["group"] for e in evidence if not e["ok"]]
        if bad:
            details += "; fails: " + ", ".join(bad)
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
    L, T and context).  Holds when every pair with T in ``small_T`` has
    ``aver - base > min_gain`` and every T = 1 pair has ``|aver - base| <= t1_tol`` (default
    exact: at T = 1 there is nothing to align).  Needs at least one small-T pair and, with
    ``require_t1``, one T = 1 pair.  Pairs at larger T are reported (``counts=False``) but do
    not affect the status - the paper's "consistently outperforms" at every T is a separate
    text claim (``sec7.6-consistently-outperforms``).
    """
    title = "QCFS+aver beats QCFS at small T (2-4) and equals it at T=1"
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["method"].isin([base, aver]) & df["T"].notna()]
    evidence: list[dict[str, Any]] = []
    small_ok = small_n = t1_ok = t1_n = 0
    for key, sub in _groups(df, _group_cols(df, {"method"})):
        vals = _mean_by(sub, "method")
        if base not in vals or aver not in vals:
            continue
        T = int(key["T"])
        diff = vals[aver] - vals[base]
        item = {
            "group": _label({k: v for k, v in key.items() if k != "T"}),
            "T": T,
            base: vals[base],
            aver: vals[aver],
            "diff": diff,
        }
        if T in small_T:
            ok = diff > min_gain
            small_n += 1
            small_ok += int(ok)
            item.update(kind="small-T", counts=True, ok=ok)
        elif T == 1:
            ok = abs(diff) <= t1_tol + 1e-9
            t1_n += 1
            t1_ok += int(ok)
            item.update(kind="T=1", counts=True, ok=ok)
        else:
            item.update(kind="larger-T", counts=False, ok=diff > 1e-9, tie=abs(diff) <= 1e-9)
        evidence.append(item)
    if small_n == 0 or (require_t1 and t1_n == 0):
        miss = "small-T" if small_n == 0 else "T=1"
        return ClaimResult("C5", title, "not-run", f"no {base}/{aver} pairs at {miss}", evidence)
    ok_all = small_ok == small_n and t1_ok == t1_n
    status: Status = "holds" if ok_all else "fails"
    larger = [e for e in evidence if e["kind"] == "larger-T"]
    larger_bad = [e for e in larger if not e["ok"]]
    details = (
        f"small T {small_ok}/{small_n} pairs with gain > {min_gain}; "
        f"T=1 {t1_ok}/{t1_n} pairs equal within {t1_tol}"
    )
    bad = [e for e in evidence if e["counts"] and not e["ok"]]
    if bad:
        details += "; fails: " + "; ".join(
            f"{e['group']} T={e['T']}: {_fmt(e[base])} vs {_fmt(e[aver])}" for e in bad
        )
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
    """C6: calibration improves accuracy (``base+cal >= base - tol`` for every pair).

    ``snn_acc`` rows with ``calibration`` ``base`` and ``base+cal`` are paired on dataset,
    architecture and context.  Not-run when no pair exists.
    """
    title = "Calibration (base+cal) does not lower accuracy vs base"
    df = _prep(results)
    df = df[(df["quantity"] == "snn_acc") & df["calibration"].isin(["base", "base+cal"])]
    evidence: list[dict[str, Any]] = []
    n_ok = n_total = 0
    for key, sub in _groups(df, _group_cols(df, {"calibration"})):
        vals = _mean_by(sub, "calibration")
        if "base" not in vals or "base+cal" not in vals:
            continue
        diff = vals["base+cal"] - vals["base"]
        ok = diff >= -tol - 1e-9
        n_total += 1
        n_ok += int(ok)
        evidence.append(
            {
                "group": _label(key),
                "base": vals["base"],
                "base+cal": vals["base+cal"],
                "diff": diff,
                "ok": ok,
            }
        )
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = "no base / base+cal pair"
    else:
        details = f"{n_ok}/{n_total} pairs with base+cal >= base - {tol}"
        bad = [e for e in evidence if not e["ok"]]
        if bad:
            details += "; lower after calibration: " + "; ".join(
                f"{e['group']} {_fmt(e['base'])} -> {_fmt(e['base+cal'])}" for e in bad
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
    Holds when every comparable pair has ``QAC - QCFS > margin``.  Identical QAC results
    reported in several tables are evaluated once.
    """
    title = "QAC beats QCFS at a comparable average timestep count"
    df = _prep(results)
    qac_rows = df[(df["method"] == qac) & df["quantity"].isin(["avg_timesteps", "snn_acc"])]
    qcfs_rows = df[(df["method"] == qcfs) & (df["quantity"] == "snn_acc") & df["T"].notna()]
    match_cols = ["dataset", "architecture"] + (["scale"] if "scale" in df.columns else [])
    seen: set[tuple[Any, ...]] = set()
    evidence: list[dict[str, Any]] = []
    n_ok = n_total = 0
    for key, sub in _groups(qac_rows, _group_cols(qac_rows, {"T", "k", "method"})):
        q = _mean_by(sub, "quantity")
        if "avg_timesteps" not in q or "snn_acc" not in q:
            continue
        avg_t, acc = q["avg_timesteps"], q["snn_acc"]
        ident = tuple(key.get(c) for c in match_cols) + (round(avg_t, 6), round(acc, 6))
        if ident in seen:
            continue
        seen.add(ident)
        cand = qcfs_rows
        for c in match_cols:
            cand = cand[cand[c].isna()] if key.get(c) is None else cand[cand[c] == key[c]]
        cand = cand[cand["T"].astype(float) >= avg_t - 1e-9]
        if max_t_ratio is not None:
            cand = cand[cand["T"].astype(float) <= max_t_ratio * avg_t + 1e-9]
        item = {"group": _label(key), "qac_avg_T": avg_t, "qac_acc": acc}
        if cand.empty or not math.isfinite(avg_t):
            item.update(ok=None, reason="no comparable QCFS setting")
            evidence.append(item)
            continue
        t_min = int(cand["T"].min())
        at = cand[cand["T"] == t_min]
        best = at.loc[at["value"].idxmax()]
        diff = acc - float(best["value"])
        ok = diff > margin
        n_total += 1
        n_ok += int(ok)
        item.update(
            qcfs_T=t_min,
            qcfs_acc=float(best["value"]),
            qcfs_table=_clean(best["table"]),
            qcfs_L=_clean(best["L"]),
            diff=diff,
            ok=ok,
        )
        evidence.append(item)
    status = _status(n_ok, n_total)
    if status == "not-run":
        details = "no QAC (avg_timesteps + snn_acc) result with a comparable QCFS setting"
    else:
        details = f"{n_ok}/{n_total} QAC results beat QCFS at the smallest T >= avg T"
        bad = [e for e in evidence if e.get("ok") is False]
        if bad:
            details += "; fails: " + "; ".join(
                f"{e['group']}: QAC {_fmt(e['qac_acc'])} @ {_fmt(e['qac_avg_T'])} vs QCFS "
                f"{_fmt(e['qcfs_acc'])} @ T={e['qcfs_T']} ({e['qcfs_table']})"
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
    """Render claim results as a Markdown summary table plus a details list."""
    icon = {"holds": "holds", "fails": "**FAILS**", "not-run": "not-run"}
    lines = [f"## {heading}", "", "| id | claim | status |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.id} | {r.title} | {icon.get(r.status, r.status)} |")
    lines.append("")
    for r in results:
        details = r.details.replace("\n", " ")
        lines.append(f"- **{r.id}** ({r.status}): {details}")
    lines.append("")
    return "\n".join(lines)


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
        if "fails" in statuses:
            return "fails", details, evidence
        if "not-run" in statuses:
            return "not-run", details, evidence
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
