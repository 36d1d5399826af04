"""Lookups of tidy values and the cell, status and note helpers of the table builders."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from qac.paper.reference import load_reference, normalize_frame
from qac.report._common import ARCHITECTURES, DATASETS, ReportInputError, is_missing
from qac.report.tables.columns import TABLE_DATASETS

__all__ = [
    "NO_SAMPLE",
    "Lookup",
    "cell_sort_key",
    "cells_of",
    "paper_cells",
    "universe",
    "note_for",
    "status",
    "add_samples",
    "prepare_ours",
    "prepare_ref",
    "paper_note",
]

NO_SAMPLE = (math.nan, math.nan, math.nan)
_KEY = ("table", "dataset", "architecture", "method", "quantity", "T", "L", "k")
_KEY += ("alignment", "calibration")


def _kstr(v: Any) -> str:
    if is_missing(v):
        return ""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


class Lookup:
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

    def note(self, table: str, dataset: str, arch: str, method: str, quantity: str, **kw):
        """The first note of a key (``None`` when there is none)."""
        return self.notes.get(self._key(table, dataset, arch, method, quantity, **kw))

    def sample(self, table: str, dataset: str, arch: str, method: str, quantity: str, **kw):
        """(n, 95 % low, 95 % high) of one accuracy (nan when unknown or averaged)."""
        key = self._key(table, dataset, arch, method, quantity, **kw)
        return self.samples.get(key, NO_SAMPLE)


def cell_sort_key(cell: tuple[str, str]) -> tuple[int, str, int, str]:
    ds, ar = cell
    di = DATASETS.index(ds) if ds in DATASETS else len(DATASETS)
    ai = ARCHITECTURES.index(ar) if ar in ARCHITECTURES else len(ARCHITECTURES)
    return (di, ds, ai, ar)


def cells_of(df: pd.DataFrame | None, **sel: Any) -> list[tuple[str, str]]:
    if df is None or len(df) == 0:
        return []
    sub = df
    for col, want in sel.items():
        if isinstance(want, list | tuple | set):
            sub = sub[sub[col].isin(list(want))]
        else:
            sub = sub[sub[col] == want]
    return list(dict.fromkeys(zip(sub["dataset"], sub["architecture"], strict=True)))


def paper_cells(name: str, ref: pd.DataFrame | None) -> list[tuple[str, str]]:
    if ref is None:
        return []
    if name == "table6":
        return cells_of(ref, table=name, method="QAC")
    return cells_of(ref, table=name)


def _in_scope(name: str, cell: tuple[str, str]) -> bool:
    scope = TABLE_DATASETS.get(name)
    return scope is None or cell[0] in scope


def universe(
    name: str, ref: pd.DataFrame | None, cells: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Paper cells of the table plus ``cells`` (ours, grid or skipped) in the table's scope."""
    out = list(paper_cells(name, ref))
    for c in cells:
        c = (str(c[0]), str(c[1]))
        if _in_scope(name, c) and c not in out:
            out.append(c)
    return sorted(out, key=cell_sort_key)


def note_for(note: str | Mapping[str, str] | None, dataset: str) -> str | None:
    """The ``note`` argument of :func:`qac.report.tables.make_table` for one dataset."""
    if note is None:
        return None
    if isinstance(note, Mapping):
        return note.get(dataset) or note.get("*") or None
    return str(note) or None


def status(reason: str | None, values: Mapping[str, float]) -> str:
    if reason:
        return f"skipped ({reason})"
    missing = [k for k, v in values.items() if is_missing(v)]
    if not missing:
        return "ok"
    if len(missing) == len(values):
        return "missing (no result)"
    return f"partial (missing {', '.join(missing)})"


def add_samples(
    row: dict[str, Any], samples: Mapping[str, tuple[float, float, float]], skipped: bool
) -> None:
    """Write ``n`` and ``X_ci_low``/``X_ci_high`` for every accuracy ``X`` of ``samples``
    into ``row`` (``n``: the largest test set among them; nothing on a skipped row)."""
    for col, (n, lo, hi) in samples.items():
        if skipped:
            n, lo, hi = NO_SAMPLE
        row[f"{col}_ci_low"], row[f"{col}_ci_high"] = lo, hi
        if not is_missing(n):
            row["n"] = n if is_missing(row.get("n")) else max(row["n"], n)


def prepare_ours(ours: pd.DataFrame | None, scale: str | None) -> pd.DataFrame | None:
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


def prepare_ref(reference: pd.DataFrame | bool | None) -> pd.DataFrame | None:
    if reference is None or reference is False:
        return None
    if reference is True:
        return load_reference()
    return normalize_frame(reference)


# ----------------------------------------------------------------------------- paper notes

#: A citation as the paper prints it: "Han et al., 2020", "Deng & Gu, 2021", "Li et al., 2021a".
_CITATION = re.compile(r"[A-Z][A-Za-z-]+(?: (?:&|and) [A-Z][A-Za-z-]+| et al\.)?, \d{4}[a-z]?")
#: Parts of a reference note about how a number was read off the PDF, not about the number.
_EXTRACTION = ("printed", "row printed", "method cell garbled")


def paper_note(raw: Any) -> tuple[str | None, str | None]:
    """Split the reference note of one of the paper's rows into (type, note).

    The reference notes are ``"; "``-separated parts: ``type: <method type>`` (Table 6), the
    citation, and remarks on how the number was read off the PDF ("printed 'QAC(Ours)'",
    "method cell garbled in extraction ('Tib (tiding of all, 202 ta)' / ...), read as TAB
    (Jiang et al., 2024a) ..."). The type comes back on its own; the PDF remarks are left out
    (only the citations they name are kept); every other remark (e.g. "marked * in the
    paper") stays.
    """
    if is_missing(raw):
        return None, None
    typ, kept = None, []
    for part in (p.strip() for p in str(raw).split(";")):
        low = part.lower()
        if low.startswith("type:"):
            typ = part.split(":", 1)[1].strip()
            typ = typ if any(ch.isupper() for ch in typ) else typ.title()
        elif low.startswith(_EXTRACTION):
            kept += [c for c in _CITATION.findall(part) if c not in kept]
        elif part and part not in kept:
            kept.append(part)
    return typ, "; ".join(kept) or None
