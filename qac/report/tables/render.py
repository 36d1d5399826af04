"""Markdown, LaTeX and CSV renderings of a table (see :mod:`qac.report.tables`)."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from qac.report._common import arch_label, atomic_write_text, dataset_label, is_missing
from qac.report.captions import with_scale_note
from qac.report.tables.columns import (
    DECIMALS,
    INT_COLUMNS,
    SIG_COLUMNS,
    SIG_DIGITS,
    TEXT_COLUMNS,
    round_frame,
)

__all__ = ["display_frame", "table_markdown", "table_latex", "write_table"]

#: Width of the wrapped caption lines in the Markdown and LaTeX files.
CAPTION_WIDTH = 100
#: LaTeX column widths of the long text columns (wrapped paragraphs).
_WRAPPED = {"status": "p{3.2cm}", "paper_note": "p{4.2cm}"}
_LABELS = {"dataset": dataset_label, "architecture": arch_label}
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def _number(column: str, v: Any) -> str:
    """One number as shown: the precision rule, ``INF`` for infinity, empty when missing."""
    if is_missing(v):
        return ""
    if column in INT_COLUMNS:
        return str(int(v))
    f = float(v)
    if math.isinf(f):
        return "INF" if f > 0 else "-INF"
    if column not in SIG_COLUMNS:
        return f"{f:.{DECIMALS}f}"
    if abs(f) >= 10**SIG_DIGITS:
        return f"{f:,.0f}"
    return f"{f:#.{SIG_DIGITS}g}".rstrip(".")


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as strings: dataset/architecture labels, numbers by the precision rule, one
    value per cell (missing and skipped cells empty)."""
    out = pd.DataFrame(index=range(len(df)))
    for c in df.columns:
        if c in TEXT_COLUMNS:
            label = _LABELS.get(c, str)
            out[c] = ["" if is_missing(v) else label(v) for v in df[c]]
        else:
            out[c] = [_number(c, v) for v in df[c]]
    return out


def _caption(df: pd.DataFrame, caption: str | None) -> str:
    """The caption, the table's note on its test-set sizes (Table 8's subset) and the scale
    note."""
    text = " ".join(t for t in ((caption or "").strip(), df.attrs.get("sample_note")) if t)
    return with_scale_note(text, df.attrs.get("notes") or {})


def table_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """Markdown (pandas ``to_markdown``, pipe format): the caption (with the scale note) as a
    wrapped paragraph, then one column per table column."""
    disp = display_frame(df).map(lambda s: s.replace("|", "\\|"))
    align = ["left" if c in TEXT_COLUMNS else "right" for c in disp.columns]
    body = disp.to_markdown(index=False, disable_numparse=True, colalign=align)
    text = _caption(df, caption)
    head = textwrap.fill(text, CAPTION_WIDTH) + "\n\n" if text else ""
    return head + body + "\n"


def _tex(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def table_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """LaTeX ``table`` with a booktabs ``tabular`` (pandas ``Styler.to_latex``; needs
    ``\\usepackage{booktabs}``): the caption (with the scale note) wrapped, long text columns
    as wrapped paragraph columns."""
    disp = display_frame(df)
    fmt = "".join(_WRAPPED.get(c, "l") if c in TEXT_COLUMNS else "r" for c in disp.columns)
    styler = disp.style.hide(axis="index").format(escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    text = _caption(df, caption)
    tex = styler.to_latex(
        column_format=fmt,
        position="ht",
        position_float="centering",
        hrules=True,
        caption=textwrap.fill(_tex(text), CAPTION_WIDTH) if text else None,
        label=label,
    )
    return "% needs \\usepackage{booktabs}\n" + tex


def write_table(
    df: pd.DataFrame, out_prefix: str | os.PathLike[str], caption: str | None = None
) -> dict[str, Path]:
    """Write ``<prefix>.csv``, ``<prefix>.md``, ``<prefix>.tex`` atomically.

    The CSV holds every column, one value per cell, rounded by the precision rule (``inf`` as
    ``inf``, missing empty); the Markdown starts with the caption, then the table; the LaTeX
    is a ``table`` environment. The scale note (``df.attrs["notes"]``) is added to the caption
    once.

    Returns:
        ``{"csv": path, "md": path, "tex": path}``.
    """
    prefix = Path(out_prefix)
    paths = {ext: prefix.with_name(prefix.name + f".{ext}") for ext in ("csv", "md", "tex")}
    rounded = round_frame(df.copy())
    atomic_write_text(paths["csv"], rounded.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(paths["md"], table_markdown(rounded, caption))
    label = f"tab:{df.attrs.get('table', prefix.name)}"
    atomic_write_text(paths["tex"], table_latex(rounded, caption, label))
    return paths
