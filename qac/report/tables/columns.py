"""Column sets of the tables and the precision rule (see :mod:`qac.report.tables`)."""

from __future__ import annotations

import math
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
from qac.report._common import is_missing

__all__ = [
    "TABLE_NAMES",
    "EXTRA_TABLE_NAMES",
    "EXPECTED_COLUMNS",
    "TABLE_DATASETS",
    "TABLE5_K",
    "TABLE8_T",
    "TABLE8_L",
    "TEXT_COLUMNS",
    "INT_COLUMNS",
    "SIG_COLUMNS",
    "DECIMALS",
    "SIG_DIGITS",
    "round_number",
    "round_frame",
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

#: Decimals of every number that is not an integer or an energy (accuracies in %, their
#: intervals, differences in pp, timesteps, bits).
DECIMALS = 2
#: Significant digits of the energy columns (:data:`SIG_COLUMNS`).
SIG_DIGITS = 3
#: Text columns (everything else is a number).
TEXT_COLUMNS: frozenset[str] = frozenset(
    {"dataset", "architecture", "method", "source", "type", "calibration", "status"}
    | {"paper_note"}
)
#: Integer columns.
INT_COLUMNS: frozenset[str] = frozenset({"L", "case", "n"})
#: Columns rounded to :data:`SIG_DIGITS` significant digits.
SIG_COLUMNS: frozenset[str] = frozenset(
    {"firing_rate", "energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio"}
)

ALL_AVER_ACC = f"snn_acc_{ALL_AVER}"
ALL_AVER_CAL = f"{ALL_AVER}+cal"


def group(x: str, *, paper: bool = True, delta: bool = True, ci: bool = True) -> tuple[str, ...]:
    """``X``, ``X_ci_low``, ``X_ci_high``, ``X_paper``, ``X_delta`` (as asked for)."""
    cols = [x]
    if ci:
        cols += [f"{x}_ci_low", f"{x}_ci_high"]
    if paper:
        cols.append(f"{x}_paper")
    if paper and delta:
        cols.append(f"{x}_delta")
    return tuple(cols)


def _ours(x: str) -> tuple[str, ...]:
    """An accuracy of ours without a paper counterpart: the value and its interval."""
    return group(x, paper=False)


_RESULT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "architecture",
    "method",
    "source",
    *group("time_steps", ci=False),
    *group("ann_acc"),
    *group("snn_acc"),
    *_ours(ALL_AVER_ACC),
    "n",
    "status",
    "paper_note",
)

#: Column set of every table (stable: CI may assert it).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "table1": _RESULT_COLUMNS,
    "table2": _RESULT_COLUMNS,
    "table7": _RESULT_COLUMNS,
    "table3": (
        "dataset",
        "architecture",
        *group("base"),
        *group("base+cal"),
        "gain",
        "gain_paper",
        *_ours(ALL_AVER),
        *_ours(ALL_AVER_CAL),
        "n",
        "status",
    ),
    "table4": (
        "dataset",
        "architecture",
        *[c for a in ALIGNMENT_POLICIES for c in group(a)],
        "n",
        "status",
    ),
    "table5": (
        "dataset",
        "architecture",
        *group("avg_timesteps", ci=False, delta=False),
        *[c for k in TABLE5_K for c in group(f"k{k}")],
        *_ours(ALL_AVER),
        "n",
        "status",
    ),
    "table6": (
        "dataset",
        "architecture",
        "method",
        "type",
        "source",
        *group("time_steps", ci=False),
        *group("snn_acc"),
        "n",
        "status",
        "paper_note",
    ),
    "table8": (
        "dataset",
        "architecture",
        "L",
        "method",
        *_ours("ann_acc"),
        *[c for t in TABLE8_T for c in group(f"T{t}")],
        "n",
        "status",
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
    ),
    "exactness": (
        "dataset",
        "architecture",
        "method",
        "case",
        "L",
        *_ours("ann_acc"),
        *_ours("snn_acc"),
        "difference",
        "n",
        "status",
    ),
}


def round_number(column: str, v: Any) -> float:
    """``v`` rounded by the precision rule of ``column`` (nan and inf unchanged)."""
    if is_missing(v):
        return math.nan
    f = float(v)
    if not math.isfinite(f):
        return f
    if column in SIG_COLUMNS:
        return float(f"{f:.{SIG_DIGITS}g}") + 0.0
    return float(np.round(f, DECIMALS)) + 0.0  # + 0.0: no "-0.0"


def round_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every float column of ``df`` rounded by the precision rule (in place; returns ``df``)."""
    for c in df.columns:
        if c not in TEXT_COLUMNS and c not in INT_COLUMNS:
            df[c] = [round_number(c, v) for v in df[c]]
            df[c] = df[c].astype("float64")
    return df


def delta(a: float, b: float) -> float:
    """``a - b`` of the two values as shown (rounded to :data:`DECIMALS`); nan when either is
    missing or infinite."""
    if is_missing(a) or is_missing(b) or math.isinf(a) or math.isinf(b):
        return math.nan
    return round_number("", round_number("", a) - round_number("", b))
