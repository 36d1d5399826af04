"""Accuracy sweeps beside the paper's: Fig. 3 (temporal scale k, Table 5) and the Table 8
figure (QCFS accuracy vs. T, with and without averaging, per L).

Where ours and the paper's numbers are far apart they never share a y-axis: Fig. 3 draws our
accuracy on its own axis (the paper's joins it only when the two are within
:data:`FAR_PP` points) and, below it, the gain over k = 1 of both on one axis; the Table 8
figure draws ours and the paper's in rows of their own. 95 % intervals are bands where the
results have them (``ci_low``/``ci_high``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from qac.report._common import cell_label, skip_reason, skipped_cells
from qac.report.figures._base import (
    GREY,
    MIN_GAIN_SPAN,
    MIN_SPAN,
    add_notes,
    curve,
    grid,
    grouped_notes,
    log2_axis,
    min_span,
    note_figure,
    plot_curve,
    save,
    series_style,
    why,
)
from qac.report.tables import cell_sort_key

#: Ours and the paper's share an accuracy axis only when their ranges are this close (pp).
FAR_PP = 5.0
OURS = {**series_style(0), "ls": "-"}
PAPER = {**series_style(1), "ls": "--"}
#: Table 8's two methods (QCFS: no averaging; QCFS+aver: averaging at every boundary).
METHODS = ("QCFS", "QCFS+aver")
#: Name (and file stem) of the Table 8 figure.
TABLE8_FIGURE = "fig_table8"


def _rows(df: pd.DataFrame | None, table: str) -> pd.DataFrame:
    return df[df["table"] == table] if df is not None and len(df) else pd.DataFrame()


def _cell_rows(df: pd.DataFrame, ds: str, ar: str) -> pd.DataFrame:
    return df[(df["dataset"] == ds) & (df["architecture"] == ar)] if len(df) else df


def _split_cells(
    ours: pd.DataFrame, paper: pd.DataFrame, skipped: Any, experiments: list[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The cells with results of ours (to draw) and a note per reason for the others."""
    cells: list[tuple[str, str]] = []
    for df in (paper, ours):
        if len(df):
            cells += [c for c in zip(df["dataset"], df["architecture"], strict=True)]
    cells += skipped_cells(skipped, experiments)
    shown, missing = [], []
    for ds, ar in sorted(dict.fromkeys(cells), key=cell_sort_key):
        reason = skip_reason(skipped, experiments, ds, ar)
        if reason or _cell_rows(ours, ds, ar).empty:
            missing.append((cell_label(ds, ar), "ours " + why(reason)))
        else:
            shown.append((ds, ar))
    return shown, grouped_notes(missing)


def _why_none(notes: list[str], skipped: Any, experiments: list[str]) -> str:
    """Why a figure shows no cell: its notes, else a skipped entry that covers every cell."""
    return "; ".join(notes) or why(skip_reason(skipped, experiments, "*", "*"))


def _close(a: pd.Series, b: pd.Series) -> bool:
    return a.min() - FAR_PP <= b.max() and b.min() - FAR_PP <= a.max()


def _span(ax: Any, span: float, bounds: tuple[float, float]) -> None:
    """At least ``span`` wide around what the panel draws (lines and bands)."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    ys += [y for coll in ax.collections for y in coll.get_paths()[0].vertices[:, 1]]
    min_span(ax, ys, span, bounds)


def _bands_note(axes: Any, whose: str) -> str:
    drawn = any(ax.collections for ax in axes.ravel())
    return f"\n(bands: 95 % Wilson intervals of {whose})" if drawn else ""


def _gain(c: pd.DataFrame) -> pd.Series:
    return c["value"] - c["value"].iloc[0]


def fig3(tidy: pd.DataFrame | None, ref: pd.DataFrame | None, skipped: Any, out_dir: Path):
    exps = ["fig3", "table5"]
    ours = _rows(tidy, "table5")
    if len(ours):
        ours = ours[ours["k"].notna() & ours["alignment"].isna()]
    paper = _rows(ref, "table5")
    shown, notes = _split_cells(ours, paper, skipped, exps)
    title = "Fig. 3 - temporal scalability: SNN accuracy vs. k (every T_l multiplied by k)"
    if not shown:
        return note_figure(out_dir, "fig3", "Fig. 3", _why_none(notes, skipped, exps))
    fig, axes = grid(2, len(shown), (4.4, 2.8), sharex=True, height_ratios=[1.2, 1.0])
    handles: dict[str, Any] = {}
    for j, (ds, ar) in enumerate(shown):
        acc_ax, gain_ax = axes[0, j], axes[1, j]
        oc = curve(_cell_rows(ours, ds, ar), "k")
        handles["ours"] = plot_curve(acc_ax, oc, OURS, "ours")
        gain_ax.plot(oc.index, _gain(oc), lw=2, ms=5, **OURS)
        p = _cell_rows(paper, ds, ar)
        ks = set(oc.index)
        if len(p):
            pc = curve(p, "k")
            ks |= set(pc.index)
            if _close(oc["value"], pc["value"]):
                plot_curve(acc_ax, pc, PAPER, "paper (Table 5)")
            else:
                lo, hi = pc["value"].min(), pc["value"].max()
                acc_ax.text(
                    0.98,
                    0.04,
                    f"paper: {lo:.1f}-{hi:.1f} % (not on this axis)",
                    transform=acc_ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize="small",
                    color=PAPER["color"],
                )
            (handles["paper (Table 5)"],) = gain_ax.plot(
                pc.index, _gain(pc), lw=2, ms=5, label="paper (Table 5)", **PAPER
            )
        gain_ax.axhline(0.0, color=GREY, lw=0.8)
        _span(acc_ax, MIN_SPAN, (0.0, 100.0))
        _span(gain_ax, MIN_GAIN_SPAN, (-100.0, 100.0))
        acc_ax.set_title(cell_label(ds, ar))
        gain_ax.set_xlabel("timestep multiplier k")
        gain_ax.set_xticks(sorted(ks))
        if j == 0:
            acc_ax.set_ylabel("SNN accuracy (%)")
            gain_ax.set_ylabel("gain over k = 1 (pp)")
    fig.legend(list(handles.values()), list(handles), loc="outside right center")
    fig.suptitle(title + _bands_note(axes, "ours"), fontweight="bold")
    add_notes(fig, notes)
    return save(fig, out_dir, "fig3", notes)


def fig_table8(tidy: pd.DataFrame | None, ref: pd.DataFrame | None, skipped: Any, out_dir: Path):
    """Table 8 as a figure: SNN accuracy vs. T (log2), QCFS and QCFS+aver, one column per L;
    per (dataset, architecture) a row of ours and, below it, a row of the paper's."""
    exps = ["table8", TABLE8_FIGURE]
    ours, paper = _rows(tidy, "table8"), _rows(ref, "table8")
    shown, notes = _split_cells(ours, paper, skipped, exps)
    title = "Table 8 - QCFS: SNN accuracy vs. T without / with averaging, per L (ours, paper)"
    if not shown:
        return note_figure(out_dir, TABLE8_FIGURE, "Table 8", _why_none(notes, skipped, exps))
    Ls = sorted({int(v) for df in (ours, paper) if len(df) for v in df["L"].dropna()})
    rows = [(c, "ours", _cell_rows(ours, *c)) for c in shown]
    rows = [r for c, src, o in rows for r in ((c, src, o), (c, "paper", _cell_rows(paper, *c)))]
    rows = [r for r in rows if len(r[2])]
    fig, axes = grid(len(rows), len(Ls), (3.2, 2.5), sharex=True, sharey="row")
    handles: dict[str, Any] = {}
    for i, ((ds, ar), src, df) in enumerate(rows):
        for j, L in enumerate(Ls):
            ax = axes[i, j]
            d = df[df["L"] == L]
            for m, method in enumerate(METHODS):
                s = d[(d["method"] == method) & (d["quantity"] == "snn_acc") & d["T"].notna()]
                if len(s):
                    label = method + (" (averaging)" if m else "")
                    handles[label] = plot_curve(ax, curve(s, "T"), series_style(m), label)
            if not ax.get_lines():
                ax.text(0.5, 0.5, "no result", transform=ax.transAxes, ha="center", color=GREY)
            ann = d[d["quantity"] == "ann_acc"]["value"]
            if len(ann):
                handles["ANN"] = ax.axhline(float(ann.mean()), color=GREY, ls=":", label="ANN")
            log2_axis(ax, "x")
            if i == 0:
                ax.set_title(f"L = {L}")
            if i == len(rows) - 1:
                ax.set_xlabel("timesteps T")
            if j == 0:
                ax.set_ylabel(f"{cell_label(ds, ar)}\n{src}: SNN acc. (%)", fontsize="small")
    fig.legend(list(handles.values()), list(handles), loc="outside right center")
    fig.suptitle(title + _bands_note(axes, "ours"), fontweight="bold")
    add_notes(fig, notes)
    return save(fig, out_dir, TABLE8_FIGURE, notes)
