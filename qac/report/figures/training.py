"""Training curves: test accuracy, training loss and mean T per epoch of every model, from the
checkpoints' ``log.jsonl`` files (:mod:`qac.train`: one JSON line per epoch)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import MaxNLocator

from qac.experiments import Activation, Model
from qac.report._common import ReportInputError, cell_label
from qac.report.figures._base import (
    DPI,
    case_style,
    grid,
    log2_axis,
    mpl,
    note_figure,
    save,
    series_style,
    set_style,
)
from qac.report.tables import cell_sort_key

#: Columns of :func:`read_training_logs`' frame.
LOG_COLUMNS = ("dataset", "architecture", "act", "epoch", "test_acc", "train_loss", "mean_T")
_PANELS = (
    ("test_acc", "test accuracy (%)"),
    ("train_loss", "training loss"),
    ("mean_T", "mean T over layers (log2)"),
)


def _model_of(path: Path) -> Model:
    """The model a log belongs to: the nearest ``<dataset>/<arch>/<act>`` above it."""
    parts = path.parent.parts
    for end in range(len(parts), 2, -1):
        try:
            return Model.parse("/".join(parts[end - 3 : end]))
        except ValueError:
            continue
    raise ReportInputError(f"{path}: not under <dataset>/<arch>/<act>/")


def _mean_T(layers: Any) -> float:
    ts = [float(r["T"]) for r in layers or [] if r.get("T") is not None]
    fin = [t for t in ts if math.isfinite(t)]
    return sum(fin) / len(fin) if fin else math.nan


def read_training_logs(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per model and epoch (:data:`LOG_COLUMNS`) from ``log.jsonl`` files."""
    rows = []
    for p in map(Path, paths):
        model = _model_of(p)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportInputError(f"{p}: cannot read the training log ({exc})") from exc
        for r in records:
            rows.append(
                {
                    "dataset": model.dataset,
                    "architecture": model.arch,
                    "act": model.act,
                    "epoch": int(r["epoch"]),
                    "test_acc": float(r.get("test_acc", math.nan) or math.nan),
                    "train_loss": float(r.get("train_loss", math.nan) or math.nan),
                    "mean_T": _mean_T(r.get("layers")),
                }
            )
    return pd.DataFrame(rows, columns=list(LOG_COLUMNS))


def _act_order(act: str) -> tuple[int, int]:
    a = Activation.parse(act)
    return (0, a.case) if a.case is not None else (1, a.levels or 0)


def _act_style(act: str) -> dict[str, Any]:
    """QAC case c: the figures' case style; QCFS L: styles after the four cases, dotted."""
    a = Activation.parse(act)
    if a.case is not None:
        return case_style(a.case)
    return {**series_style(4 + int(math.log2(max(1, a.levels or 1)))), "ls": ":"}


def training_figure(
    logs: Sequence[str | os.PathLike[str]] | pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    stem: str = "training",
    dpi: int = DPI,
) -> list[Path]:
    """Test accuracy, training loss and mean T per epoch: one row per (dataset, architecture),
    one line per activation (QAC cases solid/dashed, QCFS dotted).

    Args:
        logs: ``log.jsonl`` paths (under ``.../<dataset>/<arch>/<act>/``) or the frame of
            :func:`read_training_logs`.
        out_dir: output folder; gets ``<stem>.png`` and ``<stem>.pdf``.
    """
    df = logs if isinstance(logs, pd.DataFrame) else read_training_logs(logs)
    out = Path(out_dir)
    _, plt = mpl()
    set_style(dpi)
    try:
        if df.empty:
            return note_figure(out, stem, "Training curves", "no training logs")
        cells = sorted(
            dict.fromkeys(zip(df["dataset"], df["architecture"], strict=True)), key=cell_sort_key
        )
        fig, axes = grid(len(cells), len(_PANELS), (4.2, 2.8), sharex="row")
        handles: dict[str, Any] = {}
        for i, (ds, ar) in enumerate(cells):
            sub = df[(df["dataset"] == ds) & (df["architecture"] == ar)]
            for act in sorted(sub["act"].unique(), key=_act_order):
                run = sub[sub["act"] == act].sort_values("epoch")
                style = _act_style(act)
                every = max(1, len(run) // 12)
                for ax, (col, _) in zip(axes[i], _PANELS, strict=True):
                    r = run[run[col].notna()]
                    if len(r):
                        (handles[act],) = ax.plot(
                            r["epoch"], r[col], lw=1.6, ms=4, markevery=every, label=act, **style
                        )
            axes[i, 0].set_ylabel(cell_label(ds, ar))
            for ax, (col, label) in zip(axes[i], _PANELS, strict=True):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
                if i == 0:
                    ax.set_title(label)
                if col == "mean_T" and (sub[col] > 0).any():
                    log2_axis(ax, "y")
                if i == len(cells) - 1:
                    ax.set_xlabel("epoch")
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside right center",
        )
        fig.suptitle("Training curves per model", fontweight="bold")
        return save(fig, out, stem)
    finally:
        plt.close("all")
