"""Fig. 2 / 11: the four quantization-parameter cases - average bits and T (bars), and the ANN
accuracy in a panel of its own with 95 % intervals (no twin axis: its range is never
narrower than :data:`MIN_SPAN` points, so noise does not look like an effect)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qac.experiments import FIG2_CELLS
from qac.report._common import CASES, cell_label, skip_reason, skipped_cells
from qac.report.figures._base import (
    GREY,
    MIN_SPAN,
    add_notes,
    bars_with_inf,
    case_style,
    finite_max,
    grid,
    grouped_notes,
    interval,
    min_span,
    note_figure,
    palette,
    save,
    why,
)
from qac.report.tables import cell_sort_key

_EXPERIMENTS = ["fig2", "fig11"]


def _cells(f2: pd.DataFrame, skipped: Any) -> list[tuple[str, str]]:
    cells = list(FIG2_CELLS)
    extra = list(zip(f2.get("dataset", []), f2.get("architecture", []), strict=True))
    for c in extra + skipped_cells(skipped, _EXPERIMENTS):
        if c not in cells:
            cells.append(c)
    return sorted(cells, key=cell_sort_key)


def _get(sub: pd.DataFrame, q: str, c: int) -> tuple[float, float, float]:
    """Value and interval of quantity ``q`` of case ``c`` (NaN where missing)."""
    s = sub[(sub["quantity"] == q) & (sub["case"] == c)]
    if s.empty:
        return math.nan, math.nan, math.nan
    ci = interval(s) if len(s) == 1 else None
    lo, hi = (ci[0][0], ci[1][0]) if ci is not None else (math.nan, math.nan)
    return float(pd.to_numeric(s["value"]).mean()), lo, hi


def _accuracy_panel(ax: Any, sub: pd.DataFrame) -> bool:
    """ANN accuracy per case with its interval; True when one was drawn."""
    x = np.arange(len(CASES))
    vals = [_get(sub, "ann_acc", c) for c in CASES]
    for xi, c, (v, lo, hi) in zip(x, CASES, vals, strict=True):
        if math.isnan(v):
            ax.text(xi, 0.5, "n/a", ha="center", transform=ax.get_xaxis_transform(), color=GREY)
            continue
        err = None if math.isnan(lo) else [[v - lo], [hi - v]]
        ax.errorbar(xi, v, yerr=err, fmt=case_style(c)["marker"], color=GREY, ms=7, capsize=4)
    min_span(ax, [e for v in vals for e in v], MIN_SPAN)
    ax.set_ylabel("ANN acc. (%)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"case {c}" for c in CASES])
    ax.set_xlim(-0.5, len(CASES) - 0.5)
    return any(not math.isnan(lo) for _, lo, _ in vals)


def fig2(tidy: pd.DataFrame | None, skipped: Any, out_dir: Path) -> list[Path]:
    f2 = tidy[tidy["table"] == "fig2"] if tidy is not None else pd.DataFrame()
    title = "Fig. 2 / 11 - quantization-parameter cases: bits, timesteps, ANN accuracy"
    shown: list[tuple[tuple[str, str], pd.DataFrame]] = []
    missing: list[tuple[str, str]] = []
    for ds, ar in _cells(f2, skipped):
        reason = skip_reason(skipped, _EXPERIMENTS, ds, ar)
        sub = f2[(f2["dataset"] == ds) & (f2["architecture"] == ar)] if len(f2) else f2
        if reason or sub.empty:
            missing.append((cell_label(ds, ar), why(reason)))
        else:
            shown.append(((ds, ar), sub))
    notes = grouped_notes(missing)
    if not shown:
        return note_figure(out_dir, "fig2", "Fig. 2 / 11", "; ".join(notes))
    ncols = 2 if len(shown) == 4 else min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = grid(2 * nrows, ncols, (5.6, 2.6), height_ratios=[1.4, 1.0] * nrows)
    pal = palette()
    handles: dict[str, Any] = {}
    bars = False
    for i, ((ds, ar), sub) in enumerate(shown):
        top_ax, acc_ax = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        bits = [_get(sub, "avg_bits", c)[0] for c in CASES]
        ts = [_get(sub, "avg_timesteps", c)[0] for c in CASES]
        top = finite_max(bits + ts) * 1.12
        x, w = np.arange(len(CASES)), 0.38
        handles["average bit-width"] = bars_with_inf(
            top_ax, x - w / 2, bits, w, pal[0], "average bit-width", top
        )
        handles["average timesteps T"] = bars_with_inf(
            top_ax, x + w / 2, ts, w, pal[1], "average timesteps T", top
        )
        top_ax.set_ylim(0, top * 1.18)
        top_ax.set_xticks(x)
        top_ax.set_xticklabels([])
        top_ax.set_ylabel("bits / timesteps")
        top_ax.set_title(cell_label(ds, ar))
        bars = _accuracy_panel(acc_ax, sub) or bars
    for i in range(len(shown), nrows * ncols):
        axes[2 * (i // ncols), i % ncols].set_visible(False)
        axes[2 * (i // ncols) + 1, i % ncols].set_visible(False)
    fig.legend(list(handles.values()), list(handles), loc="outside right center")
    sub_title = "\n(error bars: 95 % Wilson intervals of the ANN accuracy)" if bars else ""
    fig.suptitle(title + sub_title, fontweight="bold")
    add_notes(fig, notes)
    return save(fig, out_dir, "fig2", notes)
