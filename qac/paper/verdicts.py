"""What every claim check shares: :class:`ClaimResult`, the status / evidence / details skeleton
(:func:`conclude`), the grouping and pairwise-test helpers, and the Markdown rendering.

A check of :mod:`qac.paper.claims` groups tidy result rows (:func:`groups`), compares
accuracies pairwise (:func:`pair_test`: a difference A - B in percentage points with a 95 %
interval and a verdict under a rule, :mod:`qac.uncertainty`), appends one evidence dict per group
(``group``, ``tests``, ``verdict``, ``ok``) and hands the list to :func:`conclude`, which gives the
claim's status (fails if any group fails, holds if all hold, else inconclusive; ``not-run``
without any judged group) and its details line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from qac.paper.reference import normalize_frame
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
    "CONTEXT_COLS",
    "Evidence",
    "prep",
    "fmt",
    "clean",
    "group_cols",
    "groups",
    "label",
    "count_status",
    "mean_by",
    "accuracy_of",
    "acc_by",
    "pair_test",
    "describe",
    "as_ok",
    "overall",
    "tally",
    "not_holding",
    "conclude",
    "claims_markdown",
]

Status = Literal["holds", "fails", "inconclusive", "not-run"]
#: One check's evidence: one dict per compared group or item.
Evidence = list[dict[str, Any]]

#: Optional columns that separate otherwise identical experiments.
CONTEXT_COLS: tuple[str, ...] = (
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


def prep(results: pd.DataFrame) -> pd.DataFrame:
    """Normalise column types (adds missing standard columns as NA)."""
    df = normalize_frame(results)
    if "case" in df.columns:
        df["case"] = pd.to_numeric(df["case"], errors="coerce")
    return df


def fmt(v: Any) -> str:
    """Compact number formatting for details strings."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def clean(v: Any) -> Any:
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


def group_cols(df: pd.DataFrame, exclude: Iterable[str]) -> list[str]:
    """Context columns present in ``df`` that are not in ``exclude``."""
    ex = set(exclude)
    return [c for c in CONTEXT_COLS if c in df.columns and c not in ex]


def groups(df: pd.DataFrame, cols: Sequence[str]) -> Iterable[tuple[dict[str, Any], pd.DataFrame]]:
    """Group ``df`` by ``cols`` keeping NA keys; yields (key dict, sub-frame)."""
    if df.empty:
        return
    if not cols:
        yield {}, df
        return
    for key, sub in df.groupby(list(cols), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield {c: clean(v) for c, v in zip(cols, key, strict=True)}, sub


def label(key: Mapping[str, Any]) -> str:
    """Short label like ``cifar10/resnet20 L=4``."""
    parts = [str(key[c]) for c in ("dataset", "architecture") if key.get(c) is not None]
    extra = [
        f"{c}={key[c]}"
        for c in ("table", "scale", "case", "method", "L", "T", "k", "alignment", "calibration")
        if key.get(c) is not None
    ]
    return "/".join(parts) + (" " + " ".join(extra) if extra else "")


def count_status(n_ok: int, n_total: int) -> Status:
    if n_total == 0:
        return "not-run"
    return "holds" if n_ok == n_total else "fails"


def mean_by(sub: pd.DataFrame, col: str) -> dict[Any, float]:
    """Mean ``value`` per distinct ``col`` value (duplicates, e.g. seeds, are averaged)."""
    return {clean(k): float(v) for k, v in sub.groupby(col, dropna=True)["value"].mean().items()}


def accuracy_of(rows: pd.DataFrame) -> Accuracy:
    """The accuracy of rows sharing one key: one row (or identical copies) keeps its ``n`` and
    per-image record; several different rows (e.g. seeds) give their mean, without ``n``."""
    first = rows.iloc[0]
    distinct = rows.drop_duplicates(subset=[c for c in ("value", "per_image") if c in rows])
    if len(distinct) > 1:
        return Accuracy(float(rows["value"].astype(float).mean()))
    n, record = clean(first.get("n")), clean(first.get("per_image"))
    n = int(n) if n else None
    per_image = None
    if n and record:
        labels = clean(first.get("labels"))
        labels = None if labels is None else str(labels)  # a CSV may read all-digit hex as int
        per_image = PerImage.from_json({"n": n, "correct": record, "labels": labels})
    return Accuracy(float(first["value"]), n, per_image)


def acc_by(sub: pd.DataFrame, col: str) -> dict[Any, Accuracy]:
    """:func:`accuracy_of` per distinct ``col`` value."""
    return {clean(k): accuracy_of(rows) for k, rows in sub.groupby(col, dropna=True)}


_RULES: dict[str, Callable[..., str]] = {
    "greater": verdict_greater,
    "not_lower": verdict_not_lower,
    "within": verdict_within,
}


def pair_test(
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


def describe(test: Mapping[str, Any]) -> str:
    """``A - B = +1.23 pp [-0.40, +2.90] (paired)``."""
    text = f"{test['a']} - {test['b']} = {test['diff']:+.2f} pp"
    if test["method"] != "point":
        text += f" [{test['ci_low']:+.2f}, {test['ci_high']:+.2f}]"
    return text + f" ({test['method']})"


def as_ok(verdict: str) -> bool | None:
    """True / False for holds / fails, None for inconclusive."""
    return {"holds": True, "fails": False}.get(verdict)


def overall(evidence: Sequence[Mapping[str, Any]]) -> Status:
    """The claim's status from its groups' verdicts (not-run without any)."""
    verdicts = [e["verdict"] for e in evidence if "verdict" in e]
    return combine(verdicts) if verdicts else "not-run"


def tally(evidence: Sequence[Mapping[str, Any]]) -> str:
    """``2 hold, 1 fails, 3 inconclusive of 6 groups``."""
    verdicts = [e["verdict"] for e in evidence if "verdict" in e]
    counts = {v: verdicts.count(v) for v in ("holds", "fails", "inconclusive")}
    return (
        f"{counts['holds']} hold, {counts['fails']} fail, {counts['inconclusive']} "
        f"inconclusive of {len(verdicts)} groups"
    )


def _group_not_holding(e: Mapping[str, Any]) -> str:
    """``group verdict (test verdict, ...)`` over the tests of ``e`` that do not hold."""
    bad = [t for t in e["tests"] if t["verdict"] != "holds"]
    return (
        f"{e['group']} {e['verdict']} ("
        + ", ".join(f"{describe(t)} {t['verdict']}" for t in bad)
        + ")"
    )


def not_holding(
    evidence: Sequence[Mapping[str, Any]],
    item: Callable[[Mapping[str, Any]], str] = _group_not_holding,
    prefix: str = "not holding",
) -> str:
    """``'; not holding: item; item'`` over the judged groups that do not hold (none: ``''``)."""
    parts = [item(e) for e in evidence if e.get("verdict") not in (None, "holds")]
    return f"; {prefix}: " + "; ".join(parts) if parts else ""


def conclude(
    cid: str,
    title: str,
    evidence: Evidence,
    *,
    not_run: str,
    rule: str = "",
    extra: Callable[[Evidence], str] = not_holding,
    status: Status | None = None,
    summary: str | None = None,
) -> ClaimResult:
    """The status / evidence / details skeleton every claim check repeats.

    Args:
        cid, title: the claim's id and statement.
        evidence: one dict per group; those with a ``verdict`` are the judged ones.
        not_run: the details when the status is ``not-run`` (nothing could be judged).
        rule: the check's parameters, shown after the tally: ``'2 hold, ... groups (rule)'``.
        extra: appended to the details of a judged claim (default: the groups that do not
            hold, with their failing tests); called only when the status is not ``not-run``.
        status: the status when the check decides it itself (default: :func:`overall` of
            ``evidence``).
        summary: replaces ``'tally (rule)'`` as the start of the details.
    """
    status = overall(evidence) if status is None else status
    if status == "not-run":
        return ClaimResult(cid, title, status, not_run, evidence)
    head = f"{tally(evidence)} ({rule})" if summary is None else summary
    return ClaimResult(cid, title, status, head + extra(evidence), evidence)


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
