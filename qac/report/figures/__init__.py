"""Figures in one seaborn style: Fig. 1, Fig. 2/11, Fig. 3, Figs. 5-10 of the paper, Table 8 as
a figure (``fig_table8``) and the training curves (:func:`training_figure`).

Every figure is written as ``<out_dir>/<name>.png`` (300 dpi) and ``.pdf``.  Colours, markers
and line styles are colour-blind safe and differ per series (each QAC case keeps its style in
every figure); per-layer timesteps and T sweeps use base-2 logarithmic axes; accuracies carry
their 95 % intervals (``ci_low``/``ci_high`` of the tidy results) where the results have them;
our numbers and the paper's share an axis only where they are close.  A panel with no data
(skipped or not run) is left out and named in a one-line note under the figure (and in the
PNG's ``Description`` text, :data:`NOTES_KEY`); a figure with no data at all is one line of
text in a small figure.  No number is ever invented, and every output file always exists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

import qac.experiments as _spec
from qac.paper.reference import load_reference, normalize_frame
from qac.report._common import ReportInputError, skipped_rows
from qac.report.figures._base import (
    DPI,
    NOTES_KEY,
    mpl,
    prep_layers,
    prep_tidy,
    set_style,
    split_data,
)
from qac.report.figures.cases import fig2
from qac.report.figures.layers import fig1, per_layer
from qac.report.figures.sweeps import TABLE8_FIGURE, fig3, fig_table8
from qac.report.figures.training import read_training_logs, training_figure

__all__ = [
    "FIGURE_NAMES",
    "FIGURE_FILES",
    "FIG2_CELLS",
    "NOTES_KEY",
    "TABLE8_FIGURE",
    "set_style",
    "make_figure",
    "read_training_logs",
    "training_figure",
]

#: Names accepted by :func:`make_figure` and the files (stems) each writes (each as .png and
#: .pdf): :mod:`qac.experiments`, plus the Table 8 figure until the specification lists it.
FIGURE_NAMES: tuple[str, ...] = tuple(dict.fromkeys((*_spec.FIGURE_NAMES, TABLE8_FIGURE)))
FIGURE_FILES: dict[str, tuple[str, ...]] = {TABLE8_FIGURE: (TABLE8_FIGURE,), **_spec.FIGURE_FILES}
FIG2_CELLS = _spec.FIG2_CELLS
_NEEDS_TIDY = ("fig2", "fig3", TABLE8_FIGURE)


def make_figure(
    name: str,
    data: Any = None,
    reference: pd.DataFrame | bool | None = True,
    out_dir: str | os.PathLike[str] = "figures",
    *,
    layers: pd.DataFrame | None = None,
    skipped: Any = None,
    scale: str | None = None,
    dpi: int = DPI,
) -> list[Path]:
    """Draw one paper figure from our results (and the paper's numbers where it has any).

    Args:
        name: ``fig1``, ``fig2``, ``fig3``, ``figs5_10`` (writes fig5 ... fig10), one of
            ``fig5`` ... ``fig10``, or ``fig_table8`` (Table 8 as a figure).
        data: the tidy results (:func:`qac.report.collect`) and/or the layer profiles
            (:func:`qac.report.layer_profiles`): a DataFrame (told apart by its ``layer``
            column), a ``(tidy, layers)`` pair or ``{"tidy": ..., "layers": ...}``.
        reference: the paper's numbers (``True``: load them; ``None``/``False``: none); Fig. 3
            (Table 5) and ``fig_table8`` (Table 8) draw them, on axes of their own where they
            are far from ours.
        out_dir: output folder; gets ``<file>.png`` (300 dpi) and ``<file>.pdf``.
        layers: the layer profiles, if not passed in ``data``.
        skipped: skipped experiments (see :func:`qac.report.skipped_rows`); experiment names
            that count: the figure's name, ``figs5_10`` for Figs. 5-10, ``fig11`` for Fig. 2,
            ``table5`` for Fig. 3, ``table8`` for ``fig_table8``, or ``*``.
        scale: keep only rows of this scale.
        dpi: resolution of the PNG (300; tests use less).

    Returns:
        The written paths (PNG and PDF per file).  Fig. 1 and Figs. 5-10 need layer
        profiles, the others the tidy results (else :class:`ReportInputError`).
    """
    if name not in FIGURE_NAMES:
        raise ReportInputError(f"unknown figure {name!r}; choose from {', '.join(FIGURE_NAMES)}")
    tidy, prof = split_data(data, layers)
    if name in _NEEDS_TIDY and tidy is None:
        raise ReportInputError(f"{name} needs the tidy results (--tidy)")
    if name not in _NEEDS_TIDY and prof is None:
        raise ReportInputError(f"{name} needs the layer profiles (--layers)")
    tidy = prep_tidy(tidy, scale)
    prof = prep_layers(prof, scale)
    if reference is True:
        ref = load_reference()
    elif reference is None or reference is False:
        ref = None
    else:
        ref = normalize_frame(reference)
    skip = skipped_rows(skipped)
    out = Path(out_dir)
    _, plt = mpl()
    set_style(dpi)
    try:
        if name == "fig1":
            return fig1(prof, skip, out)
        if name == "fig2":
            return fig2(tidy, skip, out)
        if name == "fig3":
            return fig3(tidy, ref, skip, out)
        if name == TABLE8_FIGURE:
            return fig_table8(tidy, ref, skip, out)
        paths: list[Path] = []
        for stem in FIGURE_FILES.get(name, (name,)):
            paths += per_layer(stem, prof, skip, out)
        return paths
    finally:
        plt.close("all")
