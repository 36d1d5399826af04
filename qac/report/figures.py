"""Figures in one seaborn style: Fig. 1, Fig. 2/11, Fig. 3 and Figs. 5-10 of the paper.

Every figure is written as ``<out_dir>/<name>.png`` (300 dpi) and ``.pdf``.  A panel whose
data is skipped or missing is drawn as a framed text box that says which panel it is and
why it is empty - no number is ever invented - so the workflow's outputs always exist.
"""

from __future__ import annotations

import io
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import qac.experiments as _spec
from qac.paper.reference import load_reference, normalize_frame
from qac.report._common import (
    CASES,
    ReportInputError,
    atomic_write_bytes,
    cell_label,
    is_missing,
    skip_reason,
    skipped_cells,
    skipped_rows,
)
from qac.report.captions import FIGURE_CELLS
from qac.report.tables import _cell_sort_key

__all__ = [
    "FIGURE_NAMES",
    "FIGURE_FILES",
    "FIG2_CELLS",
    "set_style",
    "make_figure",
]

#: Names accepted by :func:`make_figure`, the files (stems) each writes (each as .png and .pdf)
#: and the panels of Fig. 2/11: :mod:`qac.experiments`.
FIGURE_NAMES = _spec.FIGURE_NAMES
FIGURE_FILES = _spec.FIGURE_FILES
FIG2_CELLS = _spec.FIG2_CELLS
_GREY = "0.35"
_DPI = 300


def _mpl():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def set_style(dpi: int = _DPI) -> list[Any]:
    """Apply the report's style (seaborn ``whitegrid``, colour-blind palette, readable
    fonts, ``dpi`` (300) for saved PNGs, Type-3 fonts in PDFs - fast to write); returns the
    palette."""
    _mpl()
    import seaborn as sns

    sns.set_theme(
        context="paper",
        style="whitegrid",
        palette="colorblind",
        font_scale=1.25,
        rc={
            "savefig.dpi": dpi,
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "pdf.fonttype": 3,
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "legend.frameon": False,
            "hatch.linewidth": 1.0,
        },
    )
    return list(sns.color_palette("colorblind"))


def _palette() -> list[Any]:
    import seaborn as sns

    return list(sns.color_palette("colorblind"))


def _save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    _, plt = _mpl()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata=meta)  # dpi: rcParams, see set_style
        paths.append(atomic_write_bytes(out_dir / f"{stem}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths


def _empty_panel(ax: Any, title: str, message: str) -> None:
    """A framed panel that says why it has no data."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(True)
        ax.spines[side].set_linestyle("--")
        ax.spines[side].set_color("0.6")
    ax.set_facecolor("0.96")
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        "\n".join(textwrap.wrap(message, 34)),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize="large",
        color="0.25",
    )


def _why(reason: str | None) -> str:
    return f"skipped ({reason})" if reason else "no results for this panel (not run)"


def _figure_of_panels(n: int, ncols: int, size: tuple[float, float]):
    _, plt = _mpl()
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size[0] * ncols, size[1] * nrows),
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _prep_tidy(df: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
    if df is None:
        return None
    out = normalize_frame(df)
    if "case" in out.columns:
        out["case"] = pd.to_numeric(out["case"], errors="coerce").astype("Float64")
    if "scale" in out.columns:
        if scale is not None:
            out = out[out["scale"].isna() | (out["scale"].astype("object") == scale)]
        elif out["scale"].dropna().nunique() > 1:
            raise ReportInputError("results hold several scales: pass scale=")
    return out.reset_index(drop=True)


def _prep_layers(df: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
    if df is None:
        return None
    out = df.copy()
    for c in ("T", "bits", "alpha"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    out["case"] = pd.to_numeric(out["case"], errors="coerce").astype("Float64")
    if "layer_index" not in out.columns or out["layer_index"].isna().all():
        out["layer_index"] = out.groupby(["dataset", "architecture", "case"]).cumcount()
    out["layer_index"] = pd.to_numeric(out["layer_index"], errors="coerce")
    if "scale" in out.columns and scale is not None:
        out = out[out["scale"].isna() | (out["scale"].astype("object") == scale)]
    return out.reset_index(drop=True)


def _split_data(data: Any, layers: Any) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(tidy, layers) from what the caller passed."""
    tidy = None
    if isinstance(data, dict):
        return data.get("tidy"), data.get("layers", layers)
    if isinstance(data, tuple | list) and len(data) == 2:
        return data[0], data[1]
    if isinstance(data, pd.DataFrame):
        if "layer" in data.columns:
            return None, data if layers is None else layers
        tidy = data
    return tidy, layers


# ----------------------------------------------------------------------------- drawing aids


def _bars_with_inf(ax, x, heights, width, color, label, top):
    """Bars; an infinite height is a hatched bar to ``top`` labelled INF; NaN is 'n/a'."""
    finite = [h if (not is_missing(h) and math.isfinite(h)) else 0.0 for h in heights]
    bars = ax.bar(x, finite, width, color=color, label=label, edgecolor="white")
    for xi, h in zip(x, heights, strict=True):
        if is_missing(h):
            ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize="small", color="0.3")
        elif math.isinf(h):
            ax.bar(xi, top, width, facecolor="none", edgecolor=color, hatch="///", linewidth=1.2)
            ax.text(
                xi,
                top,
                "INF",
                ha="center",
                va="bottom",
                fontsize="small",
                fontweight="bold",
                color=color,
            )
    return bars


def _finite_max(values: Sequence[float], default: float = 1.0) -> float:
    fin = [float(v) for v in values if not is_missing(v) and math.isfinite(float(v))]
    return max(fin) if fin else default


# ----------------------------------------------------------------------------- fig1


def _fig1(layers: pd.DataFrame | None, skipped, out_dir: Path) -> list[Path]:
    _, plt = _mpl()
    pal = _palette()
    ds, ar = FIGURE_CELLS["fig1"]
    title = f"Fig. 1 - {cell_label(ds, ar)}, case 4: bit-width and timesteps per layer"
    reason = skip_reason(skipped, ["fig1"], ds, ar)
    sub = pd.DataFrame()
    if layers is not None and not reason:
        sub = layers[
            (layers["dataset"] == ds) & (layers["architecture"] == ar) & (layers["case"] == 4)
        ].sort_values("layer_index")
    if sub.empty:
        fig, (ax,) = _figure_of_panels(1, 1, (8.0, 4.0))
        _empty_panel(ax, title, _why(reason))
        return _save(fig, out_dir, "fig1")
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(sub) + 2), 4.2), layout="constrained")
    x = np.arange(1, len(sub) + 1)
    bits = sub["bits"].tolist()
    T = sub["T"].tolist()
    top = _finite_max(bits) * 1.15
    _bars_with_inf(ax, x, bits, 0.7, pal[0], "bit-width (ANN)", top)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("layer")
    ax.set_ylabel("quantization bit-width n")
    ax.set_xticks(x)
    ax.set_xticklabels([str(i) for i in x], fontsize="small")
    ax2 = ax.twinx()
    Tf = [t if math.isfinite(t) else np.nan for t in T]
    ax2.plot(x, Tf, color=pal[1], marker="o", lw=2, label="timesteps T (SNN)")
    for xi, t in zip(x, T, strict=True):
        if math.isinf(t):
            ax2.plot([xi], [0.97], marker="^", color=pal[1], transform=ax2.get_xaxis_transform())
        elif not math.isnan(t):
            ax2.annotate(
                f"{t:g}",
                (xi, t),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize="x-small",
                color=pal[1],
            )
    ax2.set_ylim(0, _finite_max(T) * 1.3)
    ax2.set_ylabel("timesteps T", color=pal[1])
    ax2.grid(False)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", ncols=2)
    avg_b = np.mean([b for b in bits if math.isfinite(b)]) if bits else math.nan
    avg_t = np.mean([t for t in T if math.isfinite(t)]) if T else math.nan
    ax.set_title(f"{title}\n(ours: average bit-width {avg_b:.2f}, average T {avg_t:.2f})")
    return _save(fig, out_dir, "fig1")


# ----------------------------------------------------------------------------- fig2


def _fig2(tidy: pd.DataFrame | None, skipped, out_dir: Path) -> list[Path]:
    pal = _palette()
    f2 = tidy[tidy["table"] == "fig2"] if tidy is not None else pd.DataFrame()
    cells = list(FIG2_CELLS)
    extra = list(zip(f2.get("dataset", []), f2.get("architecture", []), strict=True))
    for c in extra + skipped_cells(skipped, ["fig2", "fig11"]):
        if c not in cells:
            cells.append(c)
    cells.sort(key=_cell_sort_key)
    fig, axes = _figure_of_panels(len(cells), 2, (5.6, 3.9))
    handles: dict[str, Any] = {}
    for ax, (ds, ar) in zip(axes, cells, strict=True):
        title = cell_label(ds, ar)
        reason = skip_reason(skipped, ["fig2", "fig11"], ds, ar)
        sub = pd.DataFrame()
        if not reason and len(f2):
            sub = f2[(f2["dataset"] == ds) & (f2["architecture"] == ar)]
        if sub.empty:
            _empty_panel(ax, title, _why(reason))
            continue

        def get(q: str, c: int, sub: pd.DataFrame = sub) -> float:
            s = sub[(sub["quantity"] == q) & (sub["case"] == c)]["value"]
            return float(s.mean()) if len(s) else math.nan

        bits = [get("avg_bits", c) for c in CASES]
        ts = [get("avg_timesteps", c) for c in CASES]
        acc = [get("ann_acc", c) for c in CASES]
        top = _finite_max(bits + ts) * 1.12
        x = np.arange(len(CASES))
        w = 0.38
        hb = _bars_with_inf(ax, x - w / 2, bits, w, pal[0], "average bit-width", top)
        ht = _bars_with_inf(ax, x + w / 2, ts, w, pal[1], "average timesteps T", top)
        handles.setdefault("average bit-width", hb)
        handles.setdefault("average timesteps T", ht)
        ax.set_ylim(0, top * 1.18)
        ax.set_xticks(x)
        ax.set_xticklabels([f"case {c}" for c in CASES])
        ax.set_ylabel("bits / timesteps")
        ax2 = ax.twinx()
        (hl,) = ax2.plot(x, acc, color=_GREY, marker="o", lw=2, label="ANN accuracy")
        handles.setdefault("ANN accuracy (right axis)", hl)
        fin = [a for a in acc if not math.isnan(a)]
        if fin:
            lo, hi = min(fin), max(fin)
            pad = max(1.0, (hi - lo) * 0.6)
            ax2.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad) if hi + pad > lo else hi + 1)
        ax2.set_ylabel("ANN acc. (%)", color=_GREY)
        ax2.grid(False)
        missing = [
            str(c)
            for c, a, b, t in zip(CASES, acc, bits, ts, strict=True)
            if math.isnan(a) and math.isnan(b) and math.isnan(t)
        ]
        ax.set_title(title + (f" (no result: case {', '.join(missing)})" if missing else ""))
    if handles:
        fig.legend(
            list(handles.values()), list(handles.keys()), loc="outside lower center", ncols=3
        )
    fig.suptitle(
        "Fig. 2 / 11 - quantization-parameter cases: bits, timesteps, ANN accuracy",
        fontweight="bold",
    )
    return _save(fig, out_dir, "fig2")


# ----------------------------------------------------------------------------- fig3


def _fig3(tidy, ref, skipped, out_dir: Path) -> list[Path]:
    pal = _palette()
    ours = tidy[tidy["table"] == "table5"] if tidy is not None else pd.DataFrame()
    paper = ref[ref["table"] == "table5"] if ref is not None else pd.DataFrame()
    cells: list[tuple[str, str]] = []
    for df in (paper, ours):
        if len(df):
            for c in zip(df["dataset"], df["architecture"], strict=True):
                if c not in cells:
                    cells.append(c)
    for c in skipped_cells(skipped, ["fig3", "table5"]):
        if c not in cells:
            cells.append(c)
    cells.sort(key=_cell_sort_key)
    if not cells:
        fig, (ax,) = _figure_of_panels(1, 1, (6.0, 4.0))
        _empty_panel(ax, "Fig. 3 - temporal scalability", _why(None))
        return _save(fig, out_dir, "fig3")
    fig, axes = _figure_of_panels(len(cells), 3, (4.6, 3.6))
    handles: dict[str, Any] = {}
    for ax, (ds, ar) in zip(axes, cells, strict=True):
        reason = skip_reason(skipped, ["fig3", "table5"], ds, ar)
        o = (
            pd.DataFrame()
            if reason or not len(ours)
            else ours[(ours["dataset"] == ds) & (ours["architecture"] == ar) & ours["k"].notna()]
        )
        p = (
            pd.DataFrame()
            if not len(paper)
            else paper[(paper["dataset"] == ds) & (paper["architecture"] == ar)]
        )
        if o.empty and p.empty:
            _empty_panel(ax, cell_label(ds, ar), _why(reason))
            continue
        if len(p):
            p = p.groupby("k")["value"].mean().sort_index()
            (hp,) = ax.plot(
                p.index.astype(int),
                p.values,
                ls="--",
                marker="s",
                color=pal[1],
                label="paper (Table 5)",
            )
            handles.setdefault("paper (Table 5)", hp)
        if len(o):
            o = o.groupby("k")["value"].mean().sort_index()
            (ho,) = ax.plot(
                o.index.astype(int), o.values, ls="-", marker="o", lw=2, color=pal[0], label="ours"
            )
            handles.setdefault("ours", ho)
        else:
            ax.text(
                0.5,
                0.5,
                "ours: " + "\n".join(textwrap.wrap(_why(reason), 30)),
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.25",
                bbox={"boxstyle": "round", "fc": "0.95", "ec": "0.6", "ls": "--"},
            )
        ax.set_title(cell_label(ds, ar))
        ax.set_xlabel("timestep multiplier k (kT)")
        ax.set_ylabel("SNN accuracy (%)")
        ax.set_xticks(range(1, 7))
    if handles:
        fig.legend(
            list(handles.values()), list(handles.keys()), loc="outside lower center", ncols=2
        )
    fig.suptitle("Fig. 3 - temporal scalability: accuracy vs. k", fontweight="bold")
    return _save(fig, out_dir, "fig3")


# ----------------------------------------------------------------------------- figs 5-10


def _per_layer(name: str, layers, skipped, out_dir: Path) -> list[Path]:
    _, plt = _mpl()
    pal = _palette()
    ds, ar = FIGURE_CELLS[name]
    title = f"Fig. {name[3:]} - {cell_label(ds, ar)}: per-layer timesteps and bit-width"
    reason = skip_reason(skipped, [name, "figs5_10"], ds, ar)
    sub = pd.DataFrame()
    if layers is not None and not reason:
        sub = layers[
            (layers["dataset"] == ds) & (layers["architecture"] == ar) & layers["case"].notna()
        ]
    if sub.empty:
        fig, (ax,) = _figure_of_panels(1, 1, (8.0, 4.0))
        _empty_panel(ax, title, _why(reason))
        return _save(fig, out_dir, name)
    n_layers = int(sub["layer_index"].max()) + 1
    fig, (axT, axB) = plt.subplots(
        2, 1, figsize=(max(7.0, 0.4 * n_layers + 2.5), 6.4), sharex=True, layout="constrained"
    )
    markers = ("o", "s", "D", "P")
    for i, c in enumerate(CASES):
        cs = sub[sub["case"] == c].sort_values("layer_index")
        color = pal[i % len(pal)]
        if cs.empty:
            for ax in (axT, axB):
                ax.plot([], [], color=color, marker=markers[i], label=f"case {c}: no result")
            continue
        x = cs["layer_index"].to_numpy() + 1
        for ax, col in ((axT, "T"), (axB, "bits")):
            v = cs[col].to_numpy(dtype=float)
            inf = np.isinf(v)
            fin = np.where(np.isfinite(v), v, np.nan)
            if not inf.all():
                ax.plot(
                    x,
                    fin,
                    color=color,
                    marker=markers[i],
                    lw=1.6,
                    ms=4,
                    label=f"case {c}" + (" (^ = INF)" if inf.any() else ""),
                )
            if inf.any():
                ax.plot(
                    x[inf],
                    [0.95] * int(inf.sum()),
                    ls="none",
                    marker="^",
                    ms=7,
                    color=color,
                    transform=ax.get_xaxis_transform(),
                    label=f"case {c}: INF" if inf.all() else None,
                )
    axT.set_ylabel("timesteps T")
    axB.set_ylabel("bit-width n")
    axB.set_xlabel("layer")
    axB.set_xticks(range(1, n_layers + 1))
    axB.tick_params(axis="x", labelsize="small")
    for ax, col in ((axT, "T"), (axB, "bits")):
        ax.set_ylim(0, _finite_max(sub[col].tolist()) * 1.25)
    for ax, col in ((axT, "T"), (axB, "bits")):
        if np.isinf(sub[col].to_numpy(dtype=float)).any():
            ax.text(
                1.0,
                0.95,
                " INF",
                transform=ax.transAxes,
                va="center",
                ha="left",
                fontsize="small",
                fontweight="bold",
                color="0.3",
            )
    handles, labels = axT.get_legend_handles_labels()
    fig.suptitle(title, fontweight="bold")
    fig.legend(handles, labels, loc="outside lower center", ncols=4)
    return _save(fig, out_dir, name)


# ----------------------------------------------------------------------------- entry point


def make_figure(
    name: str,
    data: Any = None,
    reference: pd.DataFrame | bool | None = True,
    out_dir: str | os.PathLike[str] = "figures",
    *,
    layers: pd.DataFrame | None = None,
    skipped: Any = None,
    scale: str | None = None,
    dpi: int = _DPI,
) -> list[Path]:
    """Draw one paper figure from our results (and the paper's numbers where it has any).

    Args:
        name: ``fig1``, ``fig2``, ``fig3``, ``figs5_10`` (writes fig5 ... fig10) or one of
            ``fig5`` ... ``fig10``.
        data: the tidy results (:func:`qac.report.collect`) and/or the layer profiles
            (:func:`qac.report.layer_profiles`): a DataFrame (told apart by its ``layer``
            column), a ``(tidy, layers)`` pair or ``{"tidy": ..., "layers": ...}``.
        reference: the paper's numbers (``True``: load them; ``None``/``False``: none); only
            Fig. 3 draws reported numbers (Table 5, dashed).
        out_dir: output folder; gets ``<file>.png`` (300 dpi) and ``<file>.pdf``.
        layers: the layer profiles, if not passed in ``data``.
        skipped: skipped experiments (see :func:`qac.report.skipped_rows`); experiment names
            that count: the figure's name, ``figs5_10`` for Figs. 5-10, ``fig11`` for Fig. 2,
            ``table5`` for Fig. 3, or ``*``.
        scale: keep only rows of this scale.
        dpi: resolution of the PNG (300; tests use less).

    Returns:
        The written paths (PNG and PDF per file).  Fig. 1 and Figs. 5-10 need layer
        profiles, Figs. 2 and 3 the tidy results (else :class:`ReportInputError`).
    """
    if name not in FIGURE_NAMES:
        raise ReportInputError(f"unknown figure {name!r}; choose from {', '.join(FIGURE_NAMES)}")
    tidy, prof = _split_data(data, layers)
    if name in ("fig2", "fig3") and tidy is None:
        raise ReportInputError(f"{name} needs the tidy results (--tidy)")
    if name not in ("fig2", "fig3") and prof is None:
        raise ReportInputError(f"{name} needs the layer profiles (--layers)")
    tidy = _prep_tidy(tidy, scale)
    prof = _prep_layers(prof, scale)
    if reference is True:
        ref = load_reference()
    elif reference is None or reference is False:
        ref = None
    else:
        ref = normalize_frame(reference)
    skip = skipped_rows(skipped)
    out = Path(out_dir)
    _, plt = _mpl()
    set_style(dpi)
    try:
        if name == "fig1":
            return _fig1(prof, skip, out)
        if name == "fig2":
            return _fig2(tidy, skip, out)
        if name == "fig3":
            return _fig3(tidy, ref, skip, out)
        paths: list[Path] = []
        for stem in FIGURE_FILES[name]:
            paths += _per_layer(stem, prof, skip, out)
        return paths
    finally:
        plt.close("all")
