"""Shared drawing aids of :mod:`qac.report.figures`: style, palette, saving, notes, axes."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qac.paper.reference import normalize_frame
from qac.report._common import CASES, ReportInputError, atomic_write_bytes, is_missing

DPI = 300
#: Smallest span (percentage points) of an accuracy axis and of a gain axis: a 95 % interval
#: of an accuracy near 50 % on 10 000 images is about +-1 pp, so smaller differences are noise.
MIN_SPAN = 10.0
MIN_GAIN_SPAN = 4.0
GREY = "0.35"
#: Seaborn "colorblind" (Okabe-Ito-like) indices: blue, orange, green, purple, sky, brown,
#: pink, grey, yellow, vermillion - no two neighbours are alike (orange and vermillion
#: are never both used).
_PALETTE_ORDER = (0, 1, 2, 4, 9, 5, 6, 7, 8)
_MARKERS = ("o", "s", "D", "P", "v", "X", "*", "h", "p")  # "^" marks INF
_LINESTYLES = ("-", "--", "-.", ":")
#: Key of the PNG text chunk that lists the notes of a figure (skipped or missing panels).
NOTES_KEY = "Description"


def mpl() -> tuple[Any, Any]:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def set_style(dpi: int = DPI) -> list[Any]:
    """Apply the report's style (seaborn ``whitegrid``, colour-blind palette, readable
    fonts, ``dpi`` (300) for saved PNGs, Type-3 fonts in PDFs - fast to write); returns the
    palette in the order the figures use it."""
    mpl()
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
    return palette()


def palette() -> list[Any]:
    """Distinct colour-blind-safe colours, in the order series take them."""
    import seaborn as sns

    base = sns.color_palette("colorblind")
    return [base[i] for i in _PALETTE_ORDER]


def series_style(i: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``i``-th series (all three differ)."""
    pal = palette()
    return {
        "color": pal[i % len(pal)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "ls": _LINESTYLES[i % len(_LINESTYLES)],
    }


def case_style(case: int) -> dict[str, Any]:
    """Style of a QAC case: the same colour, marker and line style in every figure; the main
    case (the last) is solid."""
    i = CASES.index(case) if case in CASES else len(CASES)
    return {**series_style(i), "ls": _LINESTYLES[(i + 1) % len(_LINESTYLES)]}


def save(fig: Any, out_dir: Path, stem: str, notes: Sequence[str] = ()) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``; the notes also go into the PNG's text chunk."""
    _, plt = mpl()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    png_meta = {"Software": None, NOTES_KEY: "\n".join(notes) or None}
    for ext, meta in (("png", png_meta), ("pdf", {"CreationDate": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata=meta)  # dpi: rcParams, see set_style
        paths.append(atomic_write_bytes(out_dir / f"{stem}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths


def why(reason: str | None) -> str:
    return f"skipped ({reason})" if reason else "no results (not run)"


def grouped_notes(missing: Iterable[tuple[str, str]]) -> list[str]:
    """``(panel, message)`` pairs -> one line per message: ``A, B: message``."""
    by_msg: dict[str, list[str]] = {}
    for panel, msg in missing:
        by_msg.setdefault(msg, []).append(panel)
    return [f"{', '.join(panels)}: {msg}" for msg, panels in by_msg.items()]


def add_notes(fig: Any, notes: Sequence[str], prefix: str = "Not shown - ") -> None:
    """One line per note at the foot of the figure (laid out by the constrained layout;
    legends go to the right of the panels, so the two never meet)."""
    if notes:
        text = "\n".join(prefix + n for n in notes)
        fig.supxlabel(text, fontsize="small", color="0.3")


def note_figure(out_dir: Path, stem: str, title: str, message: str) -> list[Path]:
    """A figure that has nothing to draw: one line of text in a small figure."""
    _, plt = mpl()
    line = f"{title}: {message}"
    fig = plt.figure(figsize=(max(4.0, 0.085 * len(line)), 0.45))
    fig.text(0.5, 0.5, line, ha="center", va="center", color="0.25")
    return save(fig, out_dir, stem, [line])


def grid(nrows: int, ncols: int, size: tuple[float, float], **kw: Any) -> tuple[Any, Any]:
    """A constrained-layout figure of ``nrows`` x ``ncols`` panels of ``size`` inches each."""
    _, plt = mpl()
    ratios = kw.get("height_ratios")
    height = size[1] * (sum(ratios) / len(ratios) * nrows if ratios else nrows)
    return plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, height), squeeze=False, layout="constrained", **kw
    )


def log2_axis(ax: Any, axis: str = "y") -> None:
    """Base-2 logarithmic axis with plain integer tick labels (1, 2, 4, 8, ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log", base=2)
    target.set_major_locator(LogLocator(base=2, numticks=12))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def min_span(ax: Any, values: Iterable[float], span: float, bounds=(0.0, 100.0)) -> None:
    """Y-limits around ``values`` at least ``span`` wide (so that sampling noise of a few
    points does not fill the axis), clipped to ``bounds``."""
    v = [float(x) for x in values if not is_missing(x) and math.isfinite(float(x))]
    if v:
        lo, hi = min(v), max(v)
        pad = max(0.0, span - (hi - lo)) / 2 + 0.05 * max(span, hi - lo)
        ax.set_ylim(max(bounds[0], lo - pad), min(bounds[1], hi + pad))


def interval(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """The ``ci_low``/``ci_high`` columns of ``df`` (None when absent or all missing)."""
    if not {"ci_low", "ci_high"} <= set(df.columns):
        return None
    lo = pd.to_numeric(df["ci_low"], errors="coerce").to_numpy(dtype=float)
    hi = pd.to_numeric(df["ci_high"], errors="coerce").to_numpy(dtype=float)
    return None if np.isnan(lo).all() else (lo, hi)


def curve(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean ``value`` (and interval, where a single row gives it) per ``x``, sorted."""
    cols = ["value", *(c for c in ("ci_low", "ci_high") if c in df.columns)]
    out = df.assign(**{c: pd.to_numeric(df[c], errors="coerce") for c in cols})
    g = out.groupby(x)[cols]
    mean, count = g.mean(), g.size()
    for c in cols[1:]:
        mean.loc[count > 1, c] = np.nan  # several samples: no single interval
    mean.index = mean.index.astype(float)
    return mean.sort_index()


def plot_curve(ax: Any, c: pd.DataFrame, style: dict[str, Any], label: str, **kw: Any) -> Any:
    """A line with its 95 % interval as a band (where the curve has one)."""
    (line,) = ax.plot(c.index, c["value"], label=label, lw=2, ms=5, **style, **kw)
    ci = interval(c)
    if ci is not None:
        ax.fill_between(c.index, ci[0], ci[1], color=style["color"], alpha=0.18, lw=0)
    return line


def bars_with_inf(ax, x, heights, width, color, label, top):
    """Bars; an infinite height is a hatched bar to ``top`` labelled INF; NaN is 'n/a'."""
    finite = [h if (not is_missing(h) and math.isfinite(h)) else 0.0 for h in heights]
    bars = ax.bar(x, finite, width, color=color, label=label, edgecolor="white")
    for xi, h in zip(x, heights, strict=True):
        if is_missing(h):
            ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize="small", color="0.3")
        elif math.isinf(h):
            ax.bar(xi, top, width, facecolor="none", edgecolor=color, hatch="///", linewidth=1.2)
            ax.text(xi, top, "INF", ha="center", va="bottom", fontsize="small", color=color)
    return bars


def finite_max(values: Sequence[float], default: float = 1.0) -> float:
    fin = [float(v) for v in values if not is_missing(v) and math.isfinite(float(v))]
    return max(fin) if fin else default


def prep_tidy(df: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
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


def prep_layers(df: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
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


def split_data(data: Any, layers: Any) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(tidy, layers) from what the caller passed."""
    if isinstance(data, dict):
        return data.get("tidy"), data.get("layers", layers)
    if isinstance(data, tuple | list) and len(data) == 2:
        return data[0], data[1]
    if isinstance(data, pd.DataFrame):
        if "layer" in data.columns:
            return None, data if layers is None else layers
        return data, layers
    return None, layers
