"""Per-layer figures: Fig. 1 (case 4 of VGG-16 / CIFAR-10) and Figs. 5-10 (cases 1-4).

Timesteps are drawn on a base-2 logarithmic axis, so that one layer with T ~ 180 does not
flatten every other layer; bit-widths (already a logarithm of the levels) stay linear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qac.report._common import CASES, cell_label, skip_reason
from qac.report.captions import FIGURE_CELLS
from qac.report.figures._base import (
    add_notes,
    case_style,
    finite_max,
    grid,
    log2_axis,
    note_figure,
    save,
    why,
)

_INF_Y = 0.96  # axes fraction where an infinite value is marked


def _cell(layers: pd.DataFrame | None, reason: str | None, ds: str, ar: str) -> pd.DataFrame:
    if layers is None or reason:
        return pd.DataFrame()
    return layers[(layers["dataset"] == ds) & (layers["architecture"] == ar)]


def _series(ax: Any, x: np.ndarray, v: np.ndarray, style: dict[str, Any], label: str) -> None:
    """One case's values: a line over the finite ones, ^ at the top for infinite ones."""
    inf = np.isinf(v)
    shown = np.isfinite(v) & ((v > 0) | (ax.get_yscale() != "log"))
    fin = np.where(shown, v, np.nan)
    if not inf.all():
        ax.plot(x, fin, lw=1.6, ms=5, label=label + (" (^ = INF)" if inf.any() else ""), **style)
    if inf.any():
        ax.plot(
            x[inf],
            [_INF_Y] * int(inf.sum()),
            ls="none",
            marker="^",
            ms=8,
            color=style["color"],
            transform=ax.get_xaxis_transform(),
            label=f"{label}: INF" if inf.all() else None,
        )


def _timestep_axis(ax: Any, values: np.ndarray) -> None:
    log2_axis(ax, "y")
    top = finite_max(values.tolist(), 1.0)
    ax.set_ylim(0.8, max(2.0, top) * 2.0)
    ax.set_ylabel("timesteps T (log2)")


def _layer_axis(ax: Any, n_layers: int) -> None:
    ax.set_xlabel("layer")
    ax.set_xticks(range(1, n_layers + 1))
    ax.tick_params(axis="x", labelsize="small")


def fig1(layers: pd.DataFrame | None, skipped: Any, out_dir: Path) -> list[Path]:
    """Fig. 1: per-layer bit-width (bars) and T (line, log2) of case 4, two panels."""
    ds, ar = FIGURE_CELLS["fig1"]
    title = f"Fig. 1 - {cell_label(ds, ar)}, case 4: bit-width and timesteps per layer"
    reason = skip_reason(skipped, ["fig1"], ds, ar)
    sub = _cell(layers, reason, ds, ar)
    sub = sub[sub["case"] == 4].sort_values("layer_index") if len(sub) else sub
    if sub.empty:
        return note_figure(out_dir, "fig1", title, why(reason))
    n = len(sub)
    fig, axes = grid(2, 1, (max(7.0, 0.45 * n + 2), 2.2), sharex=True, height_ratios=[1.0, 1.0])
    axT, axB = axes[:, 0]
    x = np.arange(1, n + 1)
    T = sub["T"].to_numpy(dtype=float)
    bits = sub["bits"].to_numpy(dtype=float)
    style = case_style(4)
    _timestep_axis(axT, T)
    _series(axT, x, T, style, "timesteps T (SNN)")
    for xi, t in zip(x, T, strict=True):
        if np.isfinite(t):
            axT.annotate(
                f"{t:g}",
                (xi, t),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize="x-small",
                color=style["color"],
            )
    fin_bits = np.where(np.isfinite(bits), bits, 0.0)
    axB.bar(x, fin_bits, 0.7, color=style["color"], alpha=0.85, edgecolor="white")
    for xi in x[np.isinf(bits)]:
        axB.text(xi, 0, "INF", ha="center", va="bottom", fontsize="small", fontweight="bold")
    axB.set_ylabel("bit-width n")
    axB.set_ylim(0, finite_max(bits.tolist()) * 1.2)
    _layer_axis(axB, n)
    avg_b, avg_t = np.mean(bits[np.isfinite(bits)]), np.mean(T[np.isfinite(T)])
    fig.suptitle(
        f"{title}\n(ours: average bit-width {avg_b:.2f}, average T {avg_t:.2f})", fontweight="bold"
    )
    return save(fig, out_dir, "fig1")


def per_layer(name: str, layers: pd.DataFrame | None, skipped: Any, out_dir: Path) -> list[Path]:
    """One of Figs. 5-10: per-layer T (log2) and bit-width of cases 1-4."""
    ds, ar = FIGURE_CELLS[name]
    title = f"Fig. {name[3:]} - {cell_label(ds, ar)}: per-layer timesteps and bit-width"
    reason = skip_reason(skipped, [name, "figs5_10"], ds, ar)
    sub = _cell(layers, reason, ds, ar)
    sub = sub[sub["case"].notna()] if len(sub) else sub
    if sub.empty:
        return note_figure(out_dir, name, title, why(reason))
    n_layers = int(sub["layer_index"].max()) + 1
    fig, axes = grid(2, 1, (max(7.0, 0.4 * n_layers + 2.5), 3.0), sharex=True)
    axT, axB = axes[:, 0]
    _timestep_axis(axT, sub["T"].to_numpy(dtype=float))
    missing = []
    for c in CASES:
        cs = sub[sub["case"] == c].sort_values("layer_index")
        style = case_style(c)
        if cs.empty:
            missing.append(f"case {c}")
            continue
        x = cs["layer_index"].to_numpy() + 1
        _series(axT, x, cs["T"].to_numpy(dtype=float), style, f"case {c}")
        _series(axB, x, cs["bits"].to_numpy(dtype=float), style, f"case {c}")
    axB.set_ylabel("bit-width n")
    axB.set_ylim(0, finite_max(sub["bits"].tolist()) * 1.25)
    _layer_axis(axB, n_layers)
    handles, labels = axT.get_legend_handles_labels()
    fig.suptitle(title, fontweight="bold")
    fig.legend(handles, labels, loc="outside right center")
    notes = [f"{', '.join(missing)}: no results (not run)"] if missing else []
    add_notes(fig, notes)
    return save(fig, out_dir, name, notes)
