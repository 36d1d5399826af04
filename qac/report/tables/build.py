""":func:`make_table` and :func:`expected_rows` (see :mod:`qac.report.tables`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from qac.report._common import ReportInputError, skipped_cells, skipped_rows
from qac.report.tables import rows as _rows
from qac.report.tables.columns import (
    EXPECTED_COLUMNS,
    EXTRA_TABLE_NAMES,
    INT_COLUMNS,
    TABLE8_L,
    TABLE_DATASETS,
    TABLE_NAMES,
    TEXT_COLUMNS,
    round_frame,
)
from qac.report.tables.lookup import (
    Lookup,
    cells_of,
    note_for,
    paper_cells,
    prepare_ours,
    prepare_ref,
    universe,
)

__all__ = ["make_table", "expected_rows"]

_RESULT_TABLES = tuple(sorted(t for t in TABLE_DATASETS))


def _finish(name: str, rows: list[dict[str, Any]], note: Any) -> pd.DataFrame:
    """The frame of ``rows`` with the table's columns, types and precision; ``attrs`` hold the
    table's name and its scale notes (``{dataset: note}`` for the datasets of our rows that
    hold a number)."""
    cols = list(EXPECTED_COLUMNS[name])
    df = pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)
    for c in cols:
        if c in TEXT_COLUMNS:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
        elif c in INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Float64").astype("Int64")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df = round_frame(df.reset_index(drop=True))
    ours = df[df["source"] == "ours"] if "source" in df.columns else df
    ours = ours[ours["status"].astype(str).str.startswith(("ok", "partial"))]
    notes = {str(ds): note_for(note, str(ds)) for ds in dict.fromkeys(ours["dataset"])}
    df.attrs["table"] = name
    df.attrs["notes"] = {ds: text for ds, text in notes.items() if text}
    return df


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
        note: what our numbers are (the scale's data note); a mapping ``{dataset: text}``
            (key ``*`` = default) gives one per dataset. It is no column: it goes into
            ``attrs["notes"]`` (``{dataset: text}`` for the datasets with a number of ours)
            and :func:`~qac.report.tables.write_table` adds it to the caption.
        scale: keep only our rows of this scale (needed when ``ours`` mixes scales).

    Returns:
        A frame with exactly :data:`EXPECTED_COLUMNS[name]`, rounded by the precision rule;
        rows as :func:`expected_rows` describes (``attrs["table"] = name``).
    """
    if name not in EXPECTED_COLUMNS:
        raise ReportInputError(f"unknown table {name!r}; choose from {', '.join(EXPECTED_COLUMNS)}")
    mine_df = prepare_ours(ours, scale)
    ref = prepare_ref(reference)
    skip = skipped_rows(skipped)
    mine, rl = Lookup(mine_df), Lookup(ref)
    if name in EXTRA_TABLE_NAMES:
        cells = universe(name, None, skipped_cells(skip, [name]))
        return _finish(name, _rows.extra_table(name, mine_df, skip, cells), note)
    cells = universe(name, ref, cells_of(mine_df, table=name) + skipped_cells(skip, [name]))
    if name in _RESULT_TABLES:
        rows = _rows.table_results(name, mine, ref, rl, skip, cells)
    elif name == "table6":
        rows = _rows.table6(mine, ref, rl, skip, cells)
    elif name == "table3":
        rows = _rows.table3(mine, rl, skip, cells)
    elif name == "table4":
        rows = _rows.table4(mine, rl, skip, cells)
    elif name == "table5":
        rows = _rows.table5(mine, rl, skip, cells, _rows.case4_timesteps(mine_df))
    else:  # table8
        Ls = set(TABLE8_L)
        if mine_df is not None:
            Ls |= {int(v) for v in mine_df[mine_df["table"] == "table8"]["L"].dropna()}
        rows = _rows.table8(mine, rl, skip, cells, sorted(Ls))
        df = _finish(name, rows, note)
        sample_note = _rows.table8_sample_note(mine_df)
        if sample_note:
            df.attrs["sample_note"] = sample_note
        return df
    return _finish(name, rows, note)


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
    ref = prepare_ref(reference)
    cells = universe(name, ref, _grid_cells(config_grid, name))
    if name in _RESULT_TABLES or name == "table6":
        pcells = paper_cells(name, ref)
        if name == "table6":
            lit = len(_rows.lit_rows(name, ref, None))
        else:
            lit = sum(len(_rows.lit_rows(name, ref, c)) for c in pcells)
        return lit + len(pcells) + len(cells)
    if name == "table8":
        Ls = set(TABLE8_L)
        if isinstance(config_grid, Mapping) and config_grid.get("L"):
            Ls |= {int(v) for v in config_grid["L"]}
        return len(cells) * len(Ls) * 2
    return len(cells)
