"""Shared constants and helpers of :mod:`qac.report` (labels, skipped entries, atomic writes)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import qac.experiments as _spec
from qac.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "DATASETS",
    "ARCHITECTURES",
    "CASES",
    "DATASET_LABELS",
    "ARCH_LABELS",
    "SKIPPED_COLUMNS",
    "ReportInputError",
    "dataset_label",
    "arch_label",
    "cell_label",
    "to_float",
    "is_missing",
    "skipped_rows",
    "skip_reason",
    "atomic_write_text",
    "atomic_write_bytes",
]

#: Dataset and architecture orders and labels, and the QAC cases: :mod:`qac.experiments`.
DATASETS = _spec.DATASETS
ARCHITECTURES = _spec.ARCHITECTURES
CASES = _spec.CASES
DATASET_LABELS = _spec.DATASET_LABELS
ARCH_LABELS = _spec.ARCH_LABELS
#: Columns of a normalised skipped-experiments frame (:func:`skipped_rows`).
SKIPPED_COLUMNS: tuple[str, ...] = ("experiment", "dataset", "architecture", "reason")
_WILDCARDS = {"*", "all", "any", ""}
#: Accepted alternative column names of a skipped list (``qac.workflow.write_skipped``
#: writes ``artifact,dataset,arch,act,reason``; extra columns such as ``act`` are ignored).
_ALIASES = {"arch": "architecture", "artifact": "experiment"}


class ReportInputError(ValueError):
    """Bad input to :mod:`qac.report` (the CLI turns it into exit status 2)."""


def dataset_label(name: Any) -> str:
    return DATASET_LABELS.get(str(name), str(name))


def arch_label(name: Any) -> str:
    return ARCH_LABELS.get(str(name), str(name))


def cell_label(dataset: Any, arch: Any) -> str:
    """``ResNet-20 / CIFAR-10``."""
    return f"{arch_label(arch)} / {dataset_label(dataset)}"


def to_float(v: Any) -> float:
    """JSON number or ``"inf"``/``"-inf"``/``"nan"`` string -> float; ``None`` -> nan."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise ReportInputError(f"expected a number, got {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError as exc:
            raise ReportInputError(f"expected a number or 'inf', got {v!r}") from exc
    try:
        return float(v)
    except (TypeError, ValueError) as exc:
        raise ReportInputError(f"expected a number, got {v!r}") from exc


def is_missing(v: Any) -> bool:
    """``None``/NA/NaN (not ``inf``)."""
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- skipped


def _norm_text(v: Any) -> str:
    return "" if is_missing(v) else str(v).strip()


def skipped_rows(entries: Any = None) -> pd.DataFrame:
    """Normalise the experiments the workflow skipped into a frame of :data:`SKIPPED_COLUMNS`.

    Args:
        entries: ``None`` (nothing skipped); a DataFrame; a path to a CSV file (header
            ``experiment,dataset,architecture,reason``; ``artifact`` and ``arch`` are
            accepted for ``experiment`` and ``architecture``, extra columns such as ``act``
            are ignored) or to a JSON file (a list of 4-item lists or of dicts); or an
            iterable of ``(experiment, dataset, architecture, reason)`` tuples or dicts.

    ``experiment`` is a table or figure name (``table4``, ``fig2``, ``figs5_10``, ``fig7``) or
    ``*``/``all``/empty for every table and figure; ``dataset`` and ``architecture`` may be
    ``*`` (any).  A skipped cell is shown as ``skipped (reason)``, never as a number.
    """
    if entries is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SKIPPED_COLUMNS})
    if isinstance(entries, str | os.PathLike):
        path = Path(entries)
        if not path.is_file():
            raise ReportInputError(f"skipped file not found: {path}")
        if path.suffix.lower() == ".json":
            try:
                entries = json.loads(path.read_text(encoding="utf-8") or "[]")
            except json.JSONDecodeError as exc:
                raise ReportInputError(f"{path}: not valid JSON ({exc})") from exc
        else:
            text = path.read_text(encoding="utf-8")
            if not text.strip():
                return skipped_rows(None)
            try:
                entries = pd.read_csv(
                    path, dtype=str, keep_default_na=False, na_values=[], comment="#"
                )
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise ReportInputError(f"{path}: cannot parse skipped CSV ({exc})") from exc
    if isinstance(entries, pd.DataFrame):
        df = entries.rename(columns=_ALIASES).copy()
        missing = [c for c in SKIPPED_COLUMNS if c not in df.columns]
        if missing:
            raise ReportInputError(
                f"skipped entries lack columns {missing} (need {list(SKIPPED_COLUMNS)})"
            )
        records = df[list(SKIPPED_COLUMNS)].to_dict("records")
    else:
        records = []
        for e in entries:
            if isinstance(e, Mapping):
                e = dict(e)
                for alias, col in _ALIASES.items():
                    if alias in e and col not in e:
                        e[col] = e.pop(alias)
                missing = [c for c in SKIPPED_COLUMNS if c not in e]
                if missing:
                    raise ReportInputError(f"skipped entry {e} lacks {missing}")
                records.append({c: e[c] for c in SKIPPED_COLUMNS})
            else:
                e = list(e)
                if len(e) != 4:
                    raise ReportInputError(
                        f"skipped entry {e!r}: expected (experiment, dataset, architecture, reason)"
                    )
                records.append(dict(zip(SKIPPED_COLUMNS, e, strict=True)))
    out = pd.DataFrame(
        [{c: _norm_text(r[c]) for c in SKIPPED_COLUMNS} for r in records],
        columns=list(SKIPPED_COLUMNS),
    ).astype("object")
    out.loc[out["reason"] == "", "reason"] = "not run at this scale"
    return out.reset_index(drop=True)


def _matches(value: str, want: Any) -> bool:
    return value.lower() in _WILDCARDS or value == str(want)


def skip_reason(
    skipped: pd.DataFrame | None,
    experiments: Iterable[str],
    dataset: Any,
    architecture: Any,
) -> str | None:
    """Reason of the first skipped entry that covers this (experiment, dataset, arch) cell."""
    if skipped is None or len(skipped) == 0:
        return None
    names = {str(e) for e in experiments}
    for r in skipped.itertuples(index=False):
        exp = str(r.experiment)
        if (exp.lower() in _WILDCARDS or exp in names) and (
            _matches(str(r.dataset), dataset) and _matches(str(r.architecture), architecture)
        ):
            return str(r.reason)
    return None


def skipped_cells(
    skipped: pd.DataFrame | None, experiments: Iterable[str]
) -> list[tuple[str, str]]:
    """Concrete (dataset, architecture) cells skipped for one of these experiments *by name*.

    These cells are added to a table/figure even when neither the paper nor our results
    have them.  Entries with a wildcard (``*`` experiment, dataset or architecture) only
    annotate cells that are there anyway.
    """
    if skipped is None or len(skipped) == 0:
        return []
    names = {str(e) for e in experiments}
    out: list[tuple[str, str]] = []
    for r in skipped.itertuples(index=False):
        exp, ds, ar = str(r.experiment), str(r.dataset), str(r.architecture)
        if exp not in names:
            continue
        if ds.lower() in _WILDCARDS or ar.lower() in _WILDCARDS:
            continue
        if (ds, ar) not in out:
            out.append((ds, ar))
    return out


# ----------------------------------------------------------------------------- writing
