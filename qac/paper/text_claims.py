"""The statements of ``data/paper_claims.yaml`` (numbers and claims of the paper's running
text) evaluated on a tidy frame: the paper's own numbers (:mod:`qac.paper.audit`) or ours.

:func:`evaluate_check` evaluates one machine-checkable form (kinds ``none``, ``claim``,
``all_of``, ``value``, ``stat``, ``compare``, ``paired_diff``: see the YAML's header);
:func:`check_paper_claims` evaluates every statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from qac.paper.claims import CLAIMS
from qac.paper.reference import load_paper_claims, load_reference
from qac.paper.verdicts import ClaimResult, Status, fmt, prep

__all__ = ["select_rows", "evaluate_check", "check_paper_claims"]


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
        return ok, f"all of [{', '.join(fmt(v) for v in values)}] {op} {fmt(expected)}"
    s = _stat(values, stat)
    return cmp(s, expected, tol), f"{stat} = {fmt(s)} {op} {fmt(expected)}"


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
        desc = f"{fmt(left[0])} - {fmt(right[0])} = {fmt(d)} {op} {fmt(expected)}"
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
        claims: claim dicts; defaults to :func:`qac.paper.reference.load_paper_claims`.
        applies_to: only claims whose ``applies_to`` is listed are evaluated.
    """
    if df is None:
        df = load_reference()
    frame = prep(df)
    out = []
    for c in claims if claims is not None else load_paper_claims():
        if c.get("applies_to", "both") not in applies_to:
            continue
        status, details, evidence = evaluate_check(c.get("check", {"kind": "none"}), frame)
        title = f"[{c.get('section', '?')}] {c.get('quote', '')}"
        out.append(ClaimResult(str(c["id"]), title, status, details, evidence))
    return out
