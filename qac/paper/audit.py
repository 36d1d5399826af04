"""Consistency audit of the QAC paper against itself.

Every check is computed from the reference numbers (``qac/paper/data/paper_numbers.csv``)
and the text claims (``qac/paper/data/paper_claims.yaml``); nothing here hard-codes a
conclusion.  Run ``audit()`` on the packaged reference, or on any frame with the same
columns (the tests feed hand-made frames).  The checks on the tables are in
:mod:`qac.paper.audit_tables`; this module adds the text claims, runs them all and renders
the findings.

Severity:
    ``error``   two places of the paper give different numbers for the same thing, or a
                sentence states a number/comparison the tables contradict;
    ``warning`` a table pattern contradicts a qualitative statement of the text, or a
                cell looks copied / mislabelled;
    ``info``    curiosities worth knowing when reproducing (e.g. SNN above its own ANN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from qac.paper.audit_tables import (
    Finding,
    check_ann_equals_snn_value,
    check_calibration_lowers,
    check_copied_literature_rows,
    check_headline_vs_table3,
    check_snn_exceeds_ann,
    check_table4_aver_aver_vs_base,
    check_table4_identical_alignments,
    check_table4_other_alignment_equals_base,
    check_table5_monotonic,
    check_table5_T_vs_table3,
    check_table6_vs_headline,
    check_table8_aver_vs_qcfs,
)
from qac.paper.reference import load_paper_claims, load_reference, normalize_frame
from qac.paper.text_claims import evaluate_check

__all__ = ["check_text_claims", "CHECKS", "audit", "audit_markdown"]


def check_text_claims(ref: pd.DataFrame, claims: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Sentences about the paper's own numbers (``applies_to: paper``) the tables contradict."""
    out = []
    for c in claims:
        if c.get("applies_to") != "paper":
            continue
        chk = c.get("check", {"kind": "none"})
        if chk.get("kind") in ("none", "claim"):
            continue
        status, details, evidence = evaluate_check(chk, ref)
        if status != "fails":
            continue
        out.append(
            Finding(
                f"text:{c['id']}",
                f"Sec. {c.get('section', '?')} text vs tables",
                f'"{c.get("quote", "").strip()}" - contradicted by the tables: {details}',
                {"numbers_in_text": c.get("numbers", []), "check": details, "evidence": evidence},
                c.get("severity", "warning"),
            )
        )
    return out


#: Structural checks run by :func:`audit` (each ``ref -> list[Finding]``).
CHECKS: tuple[Callable[[pd.DataFrame], list[Finding]], ...] = (
    check_table5_T_vs_table3,
    check_table4_aver_aver_vs_base,
    check_table4_other_alignment_equals_base,
    check_table4_identical_alignments,
    check_calibration_lowers,
    check_headline_vs_table3,
    check_table6_vs_headline,
    check_snn_exceeds_ann,
    check_ann_equals_snn_value,
    check_table5_monotonic,
    check_table8_aver_vs_qcfs,
    check_copied_literature_rows,
)

_ORDER = {"error": 0, "warning": 1, "info": 2}


def audit(
    ref: pd.DataFrame | None = None,
    claims: Sequence[Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Find places where the paper disagrees with itself.

    Args:
        ref: reference frame (default: the packaged ``paper_numbers.csv``).
        claims: text claims (default: the packaged ``paper_claims.yaml``); only those with
            ``applies_to: paper`` and a machine-checkable form are evaluated.

    Returns:
        Findings sorted by severity (error, warning, info), then id.
    """
    frame = load_reference() if ref is None else normalize_frame(ref)
    claims = load_paper_claims() if claims is None else claims
    findings: list[Finding] = []
    for check in CHECKS:
        findings.extend(check(frame))
    findings.extend(check_text_claims(frame, claims))
    return sorted(findings, key=lambda f: (_ORDER.get(f.severity, 9), f.id))


def audit_markdown(
    findings: Sequence[Finding], heading: str = "Paper self-consistency audit"
) -> str:
    """Render findings as Markdown: a summary table and one paragraph per finding."""
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    lines = [
        f"## {heading}",
        "",
        f"{len(findings)} findings: {counts['error']} error, {counts['warning']} warning, "
        f"{counts['info']} info.",
        "",
    ]
    if not findings:
        lines.append("No inconsistencies found.")
        return "\n".join(lines) + "\n"
    lines += ["| # | severity | id | where |", "|---|---|---|---|"]
    for i, f in enumerate(findings, 1):
        lines.append(f"| {i} | {f.severity} | `{f.id}` | {f.where} |")
    lines.append("")
    for i, f in enumerate(findings, 1):
        lines.append(f"{i}. **{f.id}** ({f.severity}, {f.where}): {f.description}")
    lines.append("")
    return "\n".join(lines)
