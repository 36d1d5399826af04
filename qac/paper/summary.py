"""The files that set our results beside the paper: ``comparison.csv``, ``comparison.md``,
``claims.md`` and ``audit.md`` (``qac paper summary``, one function per file as well).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qac.io import atomic_write_text
from qac.paper.audit import audit, audit_markdown
from qac.paper.claims import check_all
from qac.paper.compare import compare, write_comparison
from qac.paper.verdicts import ClaimResult, claims_markdown
from qac.report.collect import reference_rows

__all__ = ["write_compare", "write_claims", "write_audit", "write_summary"]


def write_compare(tidy: pd.DataFrame, scale: str, out_dir: str | Path) -> dict[str, Path]:
    """``comparison.csv`` and ``comparison.md`` in ``out_dir`` (tables 1-8 rows of ``tidy``)."""
    table = compare(reference_rows(tidy), scale=scale)  # tables 1-8 only: one row per key
    return write_comparison(table, out_dir, heading=f"Comparison with the paper ({scale} scale)")


def write_claims(
    tidy: pd.DataFrame, scale: str, path: str | Path, note: str = ""
) -> list[ClaimResult]:
    """Claims C1-C7 checked on ``tidy``, written as Markdown to ``path`` (``note`` quoted first)."""
    claims = check_all(tidy)
    text = claims_markdown(claims, heading=f"The paper's claims on our {scale}-scale results")
    if note:
        text = f"> {note}\n\n{text}"
    atomic_write_text(path, text)
    return claims


def write_audit(path: str | Path) -> Path:
    """The paper's self-consistency audit as Markdown."""
    return atomic_write_text(path, audit_markdown(audit()))


def write_summary(
    tidy: pd.DataFrame, scale: str, out_dir: str | Path, note: str = ""
) -> dict[str, dict]:
    """All four files in ``out_dir``; returns their ``paths`` and each claim's status."""
    out = Path(out_dir)
    paths = write_compare(tidy, scale, out)
    claims = write_claims(tidy, scale, out / "claims.md", note)
    write_audit(out / "audit.md")
    paths.update({"claims": out / "claims.md", "audit": out / "audit.md"})
    return {"paths": paths, "claims": {c.id: c.status for c in claims}}
