"""Paper-style tables: our numbers beside the paper's, with deltas, notes and skipped cells.

Every table has a fixed column set (:data:`EXPECTED_COLUMNS`) and a row set that follows from
the paper's table and the workflow's grid (:func:`expected_rows`).  Column conventions:

* ``X`` - the number of this row: ours on rows of ours, the paper's on rows whose ``source``
  is ``paper`` (tables 1, 2, 6, 7 list the paper's rows as rows of their own);
* ``X_paper`` - the paper's reported value for the same cell (only beside a number of ours);
* ``X_delta`` - ``X - X_paper`` (ours minus paper; empty when one side is missing);
* ``status`` - ``ok``, ``partial (missing ...)``, ``missing (no result)``,
  ``skipped (<reason>)`` on rows of ours (numbers of a skipped row are always empty),
  ``reported`` on the paper's rows;
* ``note`` - the ``note`` argument on rows of ours (e.g. "CPU scale: CIFAR-10 JPEG copy,
  expect 2-3 % lower"), the paper's citation/reading note on the paper's rows;
* ``n`` and ``X_ci_low``/``X_ci_high`` - on rows of ours, the number of test images behind
  the row's accuracies and the 95 % Wilson interval of accuracy ``X`` (columns of their own,
  one number per cell; empty on the paper's rows);
* ``aver+aver+aver`` columns (Tables 1/2/7, 3, 5) - the same model with averaging at every
  boundary (the SNN equal to its quantized ANN), beside the main policy: how much of the
  SNN-ANN gap comes from running each layer at its own T. No paper counterpart; they do
  not count towards ``status``.

The CSV keeps every column; the Markdown and LaTeX renderings merge each ``X``/``X_paper``/
``X_delta`` triple into one cell ``ours / paper (+delta)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qac.experiments import (
    ALIGNMENT_POLICIES,
    ALL_AVER,
    EXTRA_TABLES,
    FIGURES,
    RESULT_TABLE,
    TABLES,
)
from qac.paper.reference import load_reference, normalize_frame
from qac.report._common import (
    ARCHITECTURES,
    DATASETS,
    ReportInputError,
    arch_label,
    atomic_write_text,
    dataset_label,
    is_missing,
    skip_reason,
    skipped_cells,
    skipped_rows,
)

__all__ = [
    "TABLE_NAMES",
    "EXTRA_TABLE_NAMES",
    "EXPECTED_COLUMNS",
    "TABLE_DATASETS",
    "TABLE5_K",
    "TABLE8_T",
    "TABLE8_L",
    "make_table",
    "expected_rows",
    "write_table",
    "table_markdown",
    "table_latex",
]

#: The paper's tables.
TABLE_NAMES: tuple[str, ...] = TABLES
#: Extra tables of ours (no paper counterpart): energy and the exactness check (claim C1).
EXTRA_TABLE_NAMES: tuple[str, ...] = tuple(t for t in EXTRA_TABLES if t not in FIGURES)
#: Datasets a table is restricted to (``None``: any dataset).
TABLE_DATASETS: dict[str, tuple[str, ...] | None] = {t: (d,) for d, t in RESULT_TABLE.items()}
#: Table 5's columns T, 2T, ..., 6T (``k1`` ... ``k6``).
TABLE5_K: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
#: Table 8's timestep columns.
TABLE8_T: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32, 64)
#: Table 8's quantization steps (rows); a grid with other L adds rows.
TABLE8_L: tuple[int, ...] = (2, 4, 8, 16)

_RESULT_TABLES = tuple(sorted(RESULT_TABLE.values()))
_SNN = {"quantity": "snn_acc"}
_TABLE3_CAL = ("base", "base+cal")


def _triple(name: str) -> tuple[str, str, str]:
    return (name, f"{name}_paper", f"{name}_delta")


def _ci(*names: str) -> tuple[str, ...]:
    """``n`` then ``X_ci_low``, ``X_ci_high`` for every accuracy column ``X``."""
    return ("n", *(f"{x}_ci_{e}" for x in names for e in ("low", "high")))


_ALL_AVER_ACC = f"snn_acc_{ALL_AVER}"
_ALL_AVER_CAL = f"{ALL_AVER}+cal"

_RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "architecture",
    "method",
    "source",
    "time_steps",
    "ann_acc",
    "snn_acc",
    "time_steps_paper",
    "ann_acc_paper",
    "snn_acc_paper",
    "time_steps_delta",
    "ann_acc_delta",
    "snn_acc_delta",
    _ALL_AVER_ACC,
    *_ci("ann_acc", "snn_acc", _ALL_AVER_ACC),
    "status",
    "note",
)

#: Column set of every table (stable: CI may assert it).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "table1": _RESULT_COLUMNS,
    "table2": _RESULT_COLUMNS,
    "table7": _RESULT_COLUMNS,
    "table3": (
        "dataset",
        "architecture",
        *_triple("base"),
        *_triple("base+cal"),
        "gain",
        "gain_paper",
        ALL_AVER,
        _ALL_AVER_CAL,
        *_ci("base", "base+cal", ALL_AVER, _ALL_AVER_CAL),
        "status",
        "note",
    ),
    "table4": (
        "dataset",
        "architecture",
        *[c for a in ALIGNMENT_POLICIES for c in _triple(a)],
        *_ci(*ALIGNMENT_POLICIES),
        "status",
        "note",
    ),
    "table5": (
        "dataset",
        "architecture",
        "avg_timesteps",
        "avg_timesteps_paper",
        *[c for k in TABLE5_K for c in _triple(f"k{k}")],
        ALL_AVER,
        *_ci(*(f"k{k}" for k in TABLE5_K), ALL_AVER),
        "status",
        "note",
    ),
    "table6": (
        "dataset",
        "architecture",
        "method",
        "type",
        "source",
        "time_steps",
        "snn_acc",
        "time_steps_paper",
        "snn_acc_paper",
        "time_steps_delta",
        "snn_acc_delta",
        *_ci("snn_acc"),
        "status",
        "note",
    ),
    "table8": (
        "dataset",
        "architecture",
        "L",
        "method",
        "ann_acc",
        *[c for t in TABLE8_T for c in _triple(f"T{t}")],
        *_ci("ann_acc", *(f"T{t}" for t in TABLE8_T)),
        "status",
        "note",
    ),
    "energy": (
        "dataset",
        "architecture",
        "method",
        "case",
        "L",
        "calibration",
        "firing_rate",
        "energy_pj_per_sample",
        "ann_energy_pj_per_sample",
        "energy_ratio",
        "status",
        "note",
    ),
    "exactness": (
        "dataset",
        "architecture",
        "method",
        "case",
        "L",
        "ann_acc",
        "snn_acc",
        "difference",
        *_ci("ann_acc", "snn_acc"),
        "status",
        "note",
    ),
}

_TEXT_COLUMNS = {
    "dataset",
    "architecture",
    "method",
    "source",
    "type",
    "calibration",
    "status",
    "note",
}
_INT_COLUMNS = {"L", "case", "n"}
_NO_SAMPLE = (math.nan, math.nan, math.nan)


# ----------------------------------------------------------------------------- lookups


def _kstr(v: Any) -> str:
    if is_missing(v):
        return ""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


_KEY = ("table", "dataset", "architecture", "method", "quantity", "T", "L", "k")
_KEY += ("alignment", "calibration")


class _Lookup:
    """Mean value per reference key of a tidy frame (``nan`` when absent)."""

    def __init__(self, df: pd.DataFrame | None):
        self.values: dict[tuple[str, ...], float] = {}
        self.notes: dict[tuple[str, ...], str] = {}
        self.samples: dict[tuple[str, ...], tuple[float, float, float]] = {}
        if df is None or len(df) == 0:
            return
        keys = [tuple(_kstr(v) for v in row) for row in df[list(_KEY)].itertuples(index=False)]
        vals: dict[tuple[str, ...], list[float]] = {}
        for k, v, note in zip(keys, df["value"].astype(float), df["note"], strict=True):
            vals.setdefault(k, []).append(float(v))
            if not is_missing(note):
                self.notes.setdefault(k, str(note))
        self.values = {k: float(np.mean(v)) if len(v) > 1 else v[0] for k, v in vals.items()}
        if all(c in df.columns for c in ("n", "ci_low", "ci_high")):
            cols = df[["n", "ci_low", "ci_high"]].itertuples(index=False)
            for k, (n, lo, hi) in zip(keys, cols, strict=True):
                if len(vals[k]) == 1 and not is_missing(n):  # one sample: its interval
                    self.samples[k] = (float(n), float(lo), float(hi))

    @staticmethod
    def _key(table: str, dataset: str, arch: str, method: str, quantity: str, **kw):
        key = (table, dataset, arch, method, quantity)
        return key + tuple(_kstr(kw.get(c)) for c in ("T", "L", "k", "alignment", "calibration"))

    def get(self, table: str, dataset: str, arch: str, method: str, quantity: str, **kw) -> float:
        return self.values.get(self._key(table, dataset, arch, method, quantity, **kw), math.nan)

    def sample(self, table: str, dataset: str, arch: str, method: str, quantity: str, **kw):
        """(n, 95 % low, 95 % high) of one accuracy (nan when unknown or averaged)."""
        key = self._key(table, dataset, arch, method, quantity, **kw)
        return self.samples.get(key, _NO_SAMPLE)


def _cell_sort_key(cell: tuple[str, str]) -> tuple[int, str, int, str]:
    ds, ar = cell
    di = DATASETS.index(ds) if ds in DATASETS else len(DATASETS)
    ai = ARCHITECTURES.index(ar) if ar in ARCHITECTURES else len(ARCHITECTURES)
    return (di, ds, ai, ar)


def _cells_of(df: pd.DataFrame | None, **sel: Any) -> list[tuple[str, str]]:
    if df is None or len(df) == 0:
        return []
    sub = df
    for col, want in sel.items():
        if isinstance(want, list | tuple | set):
            sub = sub[sub[col].isin(list(want))]
        else:
            sub = sub[sub[col] == want]
    return list(dict.fromkeys(zip(sub["dataset"], sub["architecture"], strict=True)))


def _paper_cells(name: str, ref: pd.DataFrame | None) -> list[tuple[str, str]]:
    if ref is None:
        return []
    if name == "table6":
        return _cells_of(ref, table=name, method="QAC")
    return _cells_of(ref, table=name)


def _in_scope(name: str, cell: tuple[str, str]) -> bool:
    scope = TABLE_DATASETS.get(name)
    return scope is None or cell[0] in scope


def _universe(
    name: str, ref: pd.DataFrame | None, cells: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Paper cells of the table plus ``cells`` (ours, grid or skipped) in the table's scope."""
    out = list(_paper_cells(name, ref))
    for c in cells:
        c = (str(c[0]), str(c[1]))
        if _in_scope(name, c) and c not in out:
            out.append(c)
    return sorted(out, key=_cell_sort_key)


def _note_for(note: str | Mapping[str, str] | None, dataset: str) -> str | None:
    if note is None:
        return None
    if isinstance(note, Mapping):
        return note.get(dataset) or note.get("*") or None
    return str(note) or None


def _status(reason: str | None, values: Mapping[str, float]) -> str:
    if reason:
        return f"skipped ({reason})"
    missing = [k for k, v in values.items() if is_missing(v)]
    if not missing:
        return "ok"
    if len(missing) == len(values):
        return "missing (no result)"
    return f"partial (missing {', '.join(missing)})"


def _delta(ours: float, paper: float) -> float:
    if is_missing(ours) or is_missing(paper):
        return math.nan
    if math.isinf(ours) or math.isinf(paper):
        return math.nan
    return ours - paper


def _add_samples(
    row: dict[str, Any], samples: Mapping[str, tuple[float, float, float]], skipped: bool
) -> None:
    """Write ``n`` and ``X_ci_low``/``X_ci_high`` for every accuracy ``X`` of ``samples``
    into ``row`` (``n``: the largest test set among them; nothing on a skipped row)."""
    for col, (n, lo, hi) in samples.items():
        if skipped:
            n, lo, hi = _NO_SAMPLE
        row[f"{col}_ci_low"], row[f"{col}_ci_high"] = lo, hi
        if not is_missing(n):
            row["n"] = n if is_missing(row.get("n")) else max(row["n"], n)


def _prepare_ours(ours: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
    if ours is None:
        return None
    df = normalize_frame(ours)
    if "scale" in df.columns:
        scales = sorted({str(s) for s in df["scale"].dropna().unique()})
        if scale is not None:
            df = df[df["scale"].isna() | (df["scale"].astype("object") == scale)]
        elif len(scales) > 1:
            raise ReportInputError(f"results hold several scales {scales}: pass scale=")
    return df.reset_index(drop=True)


def _prepare_ref(reference: pd.DataFrame | bool | None) -> pd.DataFrame | None:
    if reference is None or reference is False:
        return None
    if reference is True:
        return load_reference()
    return normalize_frame(reference)


def _finish(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = list(EXPECTED_COLUMNS[name])
    df = pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)
    for c in cols:
        if c in _TEXT_COLUMNS:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
        elif c in _INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Float64").astype("Int64")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df.attrs["table"] = name
    return df.reset_index(drop=True)


# ----------------------------------------------------------------------------- builders


def _lit_rows(name: str, ref: pd.DataFrame | None, cell: tuple[str, str] | None):
    """The paper's non-QAC rows: one per (method, T) ``snn_acc`` number, in printed order."""
    if ref is None:
        return []
    sub = ref[(ref["table"] == name) & (ref["method"] != "QAC")]
    if cell is not None:
        sub = sub[(sub["dataset"] == cell[0]) & (sub["architecture"] == cell[1])]
    out = []
    for _, r in sub[sub["quantity"] == "snn_acc"].iterrows():
        ann = sub[
            (sub["quantity"] == "ann_acc")
            & (sub["method"] == r["method"])
            & (sub["dataset"] == r["dataset"])
            & (sub["architecture"] == r["architecture"])
        ]["value"]
        out.append(
            {
                "dataset": r["dataset"],
                "architecture": r["architecture"],
                "method": r["method"],
                "time_steps": float(r["T"]) if not is_missing(r["T"]) else math.nan,
                "ann_acc": float(ann.iloc[0]) if len(ann) else math.nan,
                "snn_acc": float(r["value"]),
                "note": None if is_missing(r["note"]) else str(r["note"]),
            }
        )
    return out


def _table_results(name, mine, ref, rl, skipped, cells, note) -> list[dict[str, Any]]:
    """Tables 1, 2, 7: literature rows, the paper's QAC row, our QAC row per cell."""
    rows: list[dict[str, Any]] = []
    quantities = {"time_steps": "avg_timesteps", "ann_acc": "ann_acc", "snn_acc": "snn_acc"}
    for ds, ar in cells:
        for lit in _lit_rows(name, ref, (ds, ar)):
            rows.append({**lit, "source": "paper", "status": "reported"})
        paper = {c: rl.get(name, ds, ar, "QAC", q) for c, q in quantities.items()}
        has_paper = any(not is_missing(v) for v in paper.values())
        if has_paper:
            pnote = ref[(ref["table"] == name) & (ref["dataset"] == ds)]
            pnote = pnote[(pnote["architecture"] == ar) & (pnote["method"] == "QAC")]["note"]
            rows.append(
                {
                    "dataset": ds,
                    "architecture": ar,
                    "method": "QAC (paper)",
                    "source": "paper",
                    **paper,
                    "status": "reported",
                    "note": None if pnote.empty or is_missing(pnote.iloc[0]) else pnote.iloc[0],
                }
            )
        reason = skip_reason(skipped, [name], ds, ar)
        ours = {c: mine.get(name, ds, ar, "QAC", q) for c, q in quantities.items()}
        row = _ours_row(ds, ar, ours, paper, reason, note)
        all_aver = {"alignment": ALL_AVER}
        row[_ALL_AVER_ACC] = (
            math.nan if reason else mine.get(name, ds, ar, "QAC", **_SNN, **all_aver)
        )
        samples = {q: mine.sample(name, ds, ar, "QAC", q) for q in ("ann_acc", "snn_acc")}
        samples[_ALL_AVER_ACC] = mine.sample(name, ds, ar, "QAC", **_SNN, **all_aver)
        _add_samples(row, samples, bool(reason))
        rows.append(row)
    return rows


def _ours_row(ds, ar, ours, paper, reason, note, **extra) -> dict[str, Any]:
    """The "QAC (ours)" row: our values (blank when skipped) beside the paper's and the deltas."""
    if reason:
        ours = dict.fromkeys(ours, math.nan)
    row = {
        "dataset": ds,
        "architecture": ar,
        "method": "QAC (ours)",
        **extra,
        "source": "ours",
        **ours,
        "status": _status(reason, ours),
        "note": _note_for(note, ds),
    }
    for c in ours:
        row[f"{c}_paper"] = paper[c]
        row[f"{c}_delta"] = _delta(ours[c], paper[c])
    return row


def _table6(mine, ref, rl, skipped, cells, note) -> list[dict[str, Any]]:
    """Table 6: the paper's direct-training rows, then per QAC cell paper and ours."""
    rows: list[dict[str, Any]] = []
    datasets = sorted({c[0] for c in cells}, key=lambda d: _cell_sort_key((d, ""))[:2])
    if ref is not None:
        for d in ref[ref["table"] == "table6"]["dataset"].unique():
            if d not in datasets:
                datasets.append(d)
        datasets.sort(key=lambda d: _cell_sort_key((d, ""))[:2])
    for ds in datasets:
        for lit in _lit_rows("table6", ref, None):
            if lit["dataset"] != ds:
                continue
            lit_note = lit["note"] or ""
            typ = "Surrogate Gradient" if "surrogate gradient" in lit_note.lower() else None
            rows.append(
                {
                    "dataset": ds,
                    "architecture": lit["architecture"],
                    "method": lit["method"],
                    "type": typ,
                    "source": "paper",
                    "time_steps": lit["time_steps"],
                    "snn_acc": lit["snn_acc"],
                    "status": "reported",
                    "note": lit["note"],
                }
            )
        for cds, ar in cells:
            if cds != ds:
                continue
            paper = {
                "time_steps": rl.get("table6", ds, ar, "QAC", "avg_timesteps"),
                "snn_acc": rl.get("table6", ds, ar, "QAC", "snn_acc"),
            }
            if any(not is_missing(v) for v in paper.values()):
                rows.append(
                    {
                        "dataset": ds,
                        "architecture": ar,
                        "method": "QAC (paper)",
                        "type": "ANN-to-SNN",
                        "source": "paper",
                        **paper,
                        "status": "reported",
                        "note": "printed 'QAC(Ours)'",
                    }
                )
            reason = skip_reason(skipped, ["table6"], ds, ar)
            ours = {
                "time_steps": mine.get("table6", ds, ar, "QAC", "avg_timesteps"),
                "snn_acc": mine.get("table6", ds, ar, "QAC", "snn_acc"),
            }
            row = _ours_row(ds, ar, ours, paper, reason, note, type="ANN-to-SNN")
            _add_samples(
                row, {"snn_acc": mine.sample("table6", ds, ar, "QAC", **_SNN)}, bool(reason)
            )
            rows.append(row)
    return rows


def _wide_row(
    name: str,
    ds: str,
    ar: str,
    columns: Mapping[str, tuple[float, float]],
    skipped: pd.DataFrame | None,
    note: Any,
    samples: Mapping[str, tuple[float, float, float]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One row of a wide table: for every column name its (ours, paper) pair, and for the
    accuracy columns in ``samples`` their (n, 95 % low, 95 % high)."""
    reason = skip_reason(skipped, [name], ds, ar)
    row: dict[str, Any] = {"dataset": ds, "architecture": ar, **extra}
    ours_vals = {}
    for col, (ours, paper) in columns.items():
        if reason:
            ours = math.nan
        ours_vals[col] = ours
        row[col] = ours
        row[f"{col}_paper"] = paper
        row[f"{col}_delta"] = _delta(ours, paper)
    row["status"] = _status(reason, ours_vals)
    row["note"] = _note_for(note, ds)
    _add_samples(row, samples or {}, bool(reason))
    return row


def _supplement(
    row: dict[str, Any],
    mine: _Lookup,
    table: str,
    columns: Mapping[str, Mapping[str, Any]],
    skipped: bool,
) -> None:
    """Columns of ours without a paper counterpart (``{column: lookup keys}``), with their
    intervals; they do not change the row's status."""
    for col, keys in columns.items():
        row[col] = (
            math.nan
            if skipped
            else mine.get(table, row["dataset"], row["architecture"], "QAC", **_SNN, **keys)
        )
        sample = mine.sample(table, row["dataset"], row["architecture"], "QAC", **_SNN, **keys)
        _add_samples(row, {col: sample}, skipped)


def _table3(mine, rl, skipped, cells, note) -> list[dict[str, Any]]:
    rows = []
    for ds, ar in cells:
        cols = {
            cal: (
                mine.get("table3", ds, ar, "QAC", "snn_acc", calibration=cal),
                rl.get("table3", ds, ar, "QAC", "snn_acc", calibration=cal),
            )
            for cal in _TABLE3_CAL
        }
        samples = {
            cal: mine.sample("table3", ds, ar, "QAC", **_SNN, calibration=cal) for cal in cols
        }
        row = _wide_row("table3", ds, ar, cols, skipped, note, samples)
        row["gain"] = _delta(row["base+cal"], row["base"])
        row["gain_paper"] = _delta(row["base+cal_paper"], row["base_paper"])
        extra = {
            ALL_AVER: {"alignment": ALL_AVER, "calibration": "base"},
            _ALL_AVER_CAL: {"alignment": ALL_AVER, "calibration": "base+cal"},
        }
        _supplement(row, mine, "table3", extra, row["status"].startswith("skipped"))
        rows.append(row)
    return rows


def _table4(mine, rl, skipped, cells, note) -> list[dict[str, Any]]:
    rows = []
    for ds, ar in cells:
        cols = {
            a: (
                mine.get("table4", ds, ar, "QAC", "snn_acc", alignment=a),
                rl.get("table4", ds, ar, "QAC", "snn_acc", alignment=a),
            )
            for a in ALIGNMENT_POLICIES
        }
        samples = {a: mine.sample("table4", ds, ar, "QAC", **_SNN, alignment=a) for a in cols}
        rows.append(_wide_row("table4", ds, ar, cols, skipped, note, samples))
    return rows


def _case4_timesteps(mine_df: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """Average T of every case-4 ANN (table ``fig2``), per (dataset, architecture)."""
    if mine_df is None or "case" not in mine_df.columns:
        return {}
    sub = mine_df[
        (mine_df["table"] == "fig2")
        & (mine_df["quantity"] == "avg_timesteps")
        & (pd.to_numeric(mine_df["case"], errors="coerce") == 4)
    ]
    return {
        (d, a): float(v)
        for (d, a), v in sub.groupby(["dataset", "architecture"])["value"].mean().items()
    }


def _table5(mine, rl, skipped, cells, note, case4_t) -> list[dict[str, Any]]:
    rows = []
    for ds, ar in cells:
        cols = {
            f"k{k}": (
                mine.get("table5", ds, ar, "QAC", "snn_acc", k=k),
                rl.get("table5", ds, ar, "QAC", "snn_acc", k=k),
            )
            for k in TABLE5_K
        }
        samples = {f"k{k}": mine.sample("table5", ds, ar, "QAC", **_SNN, k=k) for k in TABLE5_K}
        row = _wide_row("table5", ds, ar, cols, skipped, note, samples)
        reason = skip_reason(skipped, ["table5"], ds, ar)
        _supplement(row, mine, "table5", {ALL_AVER: {"alignment": ALL_AVER}}, bool(reason))
        # our base T (k = 1): the Case-4 model's average timesteps (calibration keeps T)
        avg_t = math.nan
        for table in ("table1", "table7", "table2", "table6"):
            v = mine.get(table, ds, ar, "QAC", "avg_timesteps")
            if not is_missing(v):
                avg_t = v
                break
        if is_missing(avg_t):
            avg_t = case4_t.get((ds, ar), math.nan)
        paper_t = math.nan
        for table in ("table1", "table7", "table2"):
            v = rl.get(table, ds, ar, "QAC", "avg_timesteps")
            if not is_missing(v):
                paper_t = v
                break
        row["avg_timesteps"] = math.nan if reason else avg_t
        row["avg_timesteps_paper"] = paper_t
        rows.append(row)
    return rows


def _table8(mine, rl, skipped, cells, Ls, note) -> list[dict[str, Any]]:
    rows = []
    for ds, ar in cells:
        for L in Ls:
            ann = mine.get("table8", ds, ar, "QCFS", "ann_acc", L=L)
            for method in ("QCFS", "QCFS+aver"):
                cols = {
                    f"T{t}": (
                        mine.get("table8", ds, ar, method, "snn_acc", T=t, L=L),
                        rl.get("table8", ds, ar, method, "snn_acc", T=t, L=L),
                    )
                    for t in TABLE8_T
                }
                samples = {
                    f"T{t}": mine.sample("table8", ds, ar, method, **_SNN, T=t, L=L)
                    for t in TABLE8_T
                }
                samples["ann_acc"] = mine.sample("table8", ds, ar, "QCFS", "ann_acc", L=L)
                row = _wide_row("table8", ds, ar, cols, skipped, note, samples, L=L, method=method)
                row["ann_acc"] = math.nan if row["status"].startswith("skipped") else ann
                rows.append(row)
    return rows


def _models(mine_df: pd.DataFrame, table: str) -> list[tuple[Any, ...]]:
    sub = mine_df[mine_df["table"] == table]
    case = sub["case"] if "case" in sub.columns else pd.Series([pd.NA] * len(sub))
    keys = zip(sub["dataset"], sub["architecture"], sub["method"], case, sub["L"], strict=True)
    out = list(dict.fromkeys(tuple(None if is_missing(v) else v for v in k) for k in keys))
    return sorted(
        out, key=lambda m: (*_cell_sort_key((m[0], m[1])), str(m[2]), str(m[3]), str(m[4]))
    )


def _extra_table(name, mine_df, skipped, cells, note) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if mine_df is None:
        mine_df = normalize_frame(pd.DataFrame(columns=["table", "value"]))
        mine_df["case"] = pd.Series(dtype="Int64")
    models = _models(mine_df, name)
    have = {(m[0], m[1]) for m in models}
    for ds, ar in cells:
        if (ds, ar) not in have:
            models.append((ds, ar, None, None, None))
    models.sort(key=lambda m: (*_cell_sort_key((m[0], m[1])), str(m[2]), str(m[3]), str(m[4])))

    def pick(sub: pd.DataFrame, q: str, cal: str | None = None) -> float:
        s = sub[sub["quantity"] == q]
        if cal is not None:
            s = s[s["calibration"] == cal]
        return float(s["value"].mean()) if len(s) else math.nan

    def sample(sub: pd.DataFrame, q: str) -> tuple[float, float, float]:
        s = sub[sub["quantity"] == q]
        if len(s) != 1 or "n" not in s.columns or is_missing(s["n"].iloc[0]):
            return _NO_SAMPLE
        return tuple(float(s[c].iloc[0]) for c in ("n", "ci_low", "ci_high"))

    for ds, ar, method, case, L in models:
        sub = mine_df[
            (mine_df["table"] == name)
            & (mine_df["dataset"] == ds)
            & (mine_df["architecture"] == ar)
        ]
        if method is not None:
            sub = sub[sub["method"] == method]
        if case is not None and "case" in sub.columns:
            sub = sub[sub["case"] == case]
        if L is not None:
            sub = sub[sub["L"] == L]
        reason = skip_reason(skipped, [name], ds, ar)
        base = {"dataset": ds, "architecture": ar, "method": method, "case": case, "L": L}
        if name == "energy":
            cals = sorted(set(sub["calibration"].dropna())) or ["base"]
            for cal in cals:
                vals = {
                    q: pick(sub, q, cal)
                    for q in ("firing_rate", "energy_pj_per_sample", "ann_energy_pj_per_sample")
                }
                if reason:
                    vals = dict.fromkeys(vals, math.nan)
                e, a = vals["energy_pj_per_sample"], vals["ann_energy_pj_per_sample"]
                ratio = a / e if not (is_missing(e) or is_missing(a)) and e > 0 else math.nan
                rows.append(
                    {
                        **base,
                        "calibration": cal,
                        **vals,
                        "energy_ratio": ratio,
                        "status": _status(reason, vals),
                        "note": _note_for(note, ds),
                    }
                )
        else:
            vals = {"ann_acc": pick(sub, "ann_acc"), "snn_acc": pick(sub, "snn_acc")}
            if reason:
                vals = dict.fromkeys(vals, math.nan)
            row = {
                **base,
                **vals,
                "difference": _delta(vals["snn_acc"], vals["ann_acc"]),
                "status": _status(reason, vals),
                "note": _note_for(note, ds),
            }
            _add_samples(row, {q: sample(sub, q) for q in vals}, bool(reason))
            rows.append(row)
    return rows


def make_table(
    name: str,
    ours: pd.DataFrame | None,
    reference: pd.DataFrame | bool | None = None,
    skipped: Any = None,
    *,
    note: str | Mapping[str, str] | None = None,
    scale: str | None = None,
) -> pd.DataFrame:
    """Build one paper table with our numbers beside the paper's.

    Args:
        name: ``table1`` ... ``table8`` (or the extras ``energy``, ``exactness``).
        ours: tidy results (:func:`qac.report.collect` or :func:`qac.report.read_tidy`).
        reference: the paper's numbers (``load_reference()``); ``True`` loads them, ``None``/
            ``False`` builds the table from our results only (no paper rows/columns filled).
        skipped: skipped experiments (anything :func:`qac.report.skipped_rows` accepts);
            their cells show ``skipped (reason)`` and no numbers.
        note: text for the ``note`` column of our rows; a mapping ``{dataset: text}`` (key
            ``*`` = default) gives per-dataset notes.
        scale: keep only our rows of this scale (needed when ``ours`` mixes scales).

    Returns:
        A frame with exactly :data:`EXPECTED_COLUMNS[name]`; rows as :func:`expected_rows`
        describes (``attrs["table"] = name``).
    """
    if name not in EXPECTED_COLUMNS:
        raise ReportInputError(f"unknown table {name!r}; choose from {', '.join(EXPECTED_COLUMNS)}")
    mine_df = _prepare_ours(ours, scale)
    ref = _prepare_ref(reference)
    skip = skipped_rows(skipped)
    mine, rl = _Lookup(mine_df), _Lookup(ref)
    our_cells = _cells_of(mine_df, table=name) + skipped_cells(skip, [name])
    if name in EXTRA_TABLE_NAMES:
        cells = _universe(name, None, skipped_cells(skip, [name]))
        return _finish(name, _extra_table(name, mine_df, skip, cells, note))
    cells = _universe(name, ref, our_cells)
    if name in _RESULT_TABLES:
        rows = _table_results(name, mine, ref, rl, skip, cells, note)
    elif name == "table6":
        rows = _table6(mine, ref, rl, skip, cells, note)
    elif name == "table3":
        rows = _table3(mine, rl, skip, cells, note)
    elif name == "table4":
        rows = _table4(mine, rl, skip, cells, note)
    elif name == "table5":
        rows = _table5(mine, rl, skip, cells, note, _case4_timesteps(mine_df))
    else:  # table8
        Ls = set(TABLE8_L)
        if mine_df is not None:
            Ls |= {int(v) for v in mine_df[mine_df["table"] == "table8"]["L"].dropna()}
        rows = _table8(mine, rl, skip, cells, sorted(Ls), note)
    return _finish(name, rows)


# ----------------------------------------------------------------------------- row counts


def _grid_cells(grid: Any, name: str) -> list[tuple[str, str]]:
    if grid is None:
        return []
    if isinstance(grid, Mapping):
        if name in grid:
            return _grid_cells(grid[name], name)
        if "cells" in grid:
            return [(str(d), str(a)) for d, a in grid["cells"]]
        ds = grid.get("datasets")
        if isinstance(ds, Mapping):
            return [(str(d), str(a)) for d, archs in ds.items() for a in archs]
        if ds is not None:
            archs = grid.get("architectures") or grid.get("archs") or ()
            return [(str(d), str(a)) for d in ds for a in archs]
        return []
    return [(str(d), str(a)) for d, a in grid]


def expected_rows(
    name: str,
    config_grid: Any = None,
    *,
    reference: pd.DataFrame | bool | None = True,
) -> int:
    """Number of rows :func:`make_table` gives for the workflow's grid.

    Args:
        name: ``table1`` ... ``table8``.
        config_grid: the (dataset, architecture) cells for which the workflow produced or
            skipped this table's experiment: an iterable of pairs, or a mapping with
            ``cells`` (pairs), or ``datasets`` (a mapping dataset -> architectures, or a list
            crossed with ``architectures``); a key equal to ``name`` overrides the cells for
            that table; ``L`` lists the QCFS L values (Table 8).
        reference: as for :func:`make_table` (default: the paper's numbers).

    Rules, with ``U`` = the paper's cells of the table plus the grid's cells (restricted to
    CIFAR-10 for table1, ImageNet for table2, CIFAR-100 for table7):

    * tables 1, 2, 7: one row per literature (method, T) number of the paper in the paper's
      cells, one ``QAC (paper)`` row per paper cell, one ``QAC (ours)`` row per cell of U;
    * table 6: every literature row of the paper's Table 6 (all datasets), one ``QAC (paper)``
      row per paper QAC cell, one ``QAC (ours)`` row per cell of U;
    * tables 3, 4, 5: one row per cell of U;
    * table 8: ``|U| x |L| x 2`` (methods QCFS and QCFS+aver), L = {2, 4, 8, 16} + grid L.

    Without a reference, U is the grid's cells and no paper rows are added.
    """
    if name not in TABLE_NAMES:
        raise ReportInputError(f"expected_rows: unknown table {name!r}")
    ref = _prepare_ref(reference)
    cells = _universe(name, ref, _grid_cells(config_grid, name))
    if name in _RESULT_TABLES or name == "table6":
        paper_cells = _paper_cells(name, ref)
        if name == "table6":
            lit = len(_lit_rows(name, ref, None))
        else:
            lit = sum(len(_lit_rows(name, ref, c)) for c in paper_cells)
        return lit + len(paper_cells) + len(cells)
    if name == "table8":
        Ls = set(TABLE8_L)
        if isinstance(config_grid, Mapping) and config_grid.get("L"):
            Ls |= {int(v) for v in config_grid["L"]}
        return len(cells) * len(Ls) * 2
    return len(cells)


# ----------------------------------------------------------------------------- rendering


def _fmt(v: Any, digits: int = 2) -> str:
    if is_missing(v):
        return ""
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1):
        return f"{v:.3g}"
    return f"{v:.{digits}f}"


def _fmt_steps(v: Any) -> str:
    """Timestep counts: integers without decimals (literature T), else as :func:`_fmt`."""
    if not is_missing(v) and not isinstance(v, str):
        f = float(v)
        if math.isfinite(f) and f.is_integer():
            return str(int(f))
    return _fmt(v)


def _signed(v: Any) -> str:
    if is_missing(v) or math.isinf(float(v)):
        return ""
    return f"{float(v):+.2f}"


def _display(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Columns and string cells with each X / X_paper / X_delta triple merged into X."""
    cols = list(df.columns)
    triples = {c for c in cols if f"{c}_paper" in cols and f"{c}_delta" in cols}
    pairs = {c for c in cols if f"{c}_paper" in cols and c not in triples}
    hidden = {f"{c}_paper" for c in triples | pairs} | {f"{c}_delta" for c in triples}
    shown = [c for c in cols if c not in hidden]
    body = []
    for _, r in df.iterrows():
        status = str(r.get("status") or "")
        skipped = status.startswith("skipped")
        cells = []
        for c in shown:
            v = r[c]
            if c in triples or c in pairs:
                if r.get("source") == "paper":  # the paper's own row: its number only
                    cells.append(_fmt_steps(v) if c == "time_steps" else _fmt(v))
                    continue
                ours = "skipped" if skipped else (_fmt(v) or "-")
                paper = _fmt(r[f"{c}_paper"])
                d = _signed(r[f"{c}_delta"]) if c in triples else ""
                text = ours if not paper else f"{ours} / {paper}" + (f" ({d})" if d else "")
                cells.append(text)
            elif c == "dataset":
                cells.append(dataset_label(v) if not is_missing(v) else "")
            elif c == "architecture":
                cells.append(arch_label(v) if not is_missing(v) else "")
            elif c in _INT_COLUMNS:
                cells.append("" if is_missing(v) else str(int(v)))
            else:
                cells.append(_fmt(v))
        body.append(cells)
    return shown, body


def _header_label(c: str, df: pd.DataFrame) -> str:
    cols = set(df.columns)
    if f"{c}_paper" in cols and f"{c}_delta" in cols:
        return f"{c} (ours / paper (delta))"
    if f"{c}_paper" in cols:
        return f"{c} (ours / paper)"
    return c


def table_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """Markdown rendering (triples merged into ``ours / paper (+delta)``)."""
    shown, body = _display(df)

    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = []
    if caption:
        lines += [esc(caption), ""]
    lines.append("| " + " | ".join(esc(_header_label(c, df)) for c in shown) + " |")
    lines.append("|" + "|".join("---" for _ in shown) + "|")
    for cells in body:
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    if not body:
        lines.append("| " + " | ".join("" for _ in shown) + " |")
    return "\n".join(lines) + "\n"


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


def _tex(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def table_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """LaTeX ``table`` + ``tabular`` (no packages needed)."""
    shown, body = _display(df)
    align = "".join("l" if c in _TEXT_COLUMNS else "r" for c in shown)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    if label:
        lines.append(r"\label{" + _tex(label) + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\hline"]
    lines.append(" & ".join(_tex(_header_label(c, df)) for c in shown) + r" \\")
    lines.append(r"\hline")
    for cells in body:
        lines.append(" & ".join(_tex(c) for c in cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, out_prefix: str | os.PathLike[str], caption: str | None = None
) -> dict[str, Path]:
    """Write ``<prefix>.csv``, ``<prefix>.md``, ``<prefix>.tex`` atomically.

    The CSV holds every column (floats unrounded, ``inf`` as ``inf``, missing empty); the
    Markdown starts with the caption, then the table; the LaTeX is a ``table`` environment.

    Returns:
        ``{"csv": path, "md": path, "tex": path}``.
    """
    prefix = Path(out_prefix)
    paths = {ext: prefix.with_name(prefix.name + f".{ext}") for ext in ("csv", "md", "tex")}
    atomic_write_text(paths["csv"], df.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(paths["md"], table_markdown(df, caption))
    label = f"tab:{df.attrs.get('table', prefix.name)}"
    atomic_write_text(paths["tex"], table_latex(df, caption, label))
    return paths
