"""Paper-style tables in tidy form: our numbers beside the paper's, one value per cell.

Every table has a fixed column set (:data:`EXPECTED_COLUMNS`) and a row set that follows from
the paper's table and the workflow's grid (:func:`expected_rows`). Column conventions:

* ``X`` - the number of this row: ours on rows of ours, the paper's on rows whose ``source``
  is ``paper`` (tables 1, 2, 6, 7 list the paper's rows as rows of their own);
* ``X_ci_low``/``X_ci_high`` - on rows of ours, the 95 % Wilson interval of accuracy ``X``;
  ``n`` the number of test images behind the row's accuracies (empty on the paper's rows);
* ``X_paper`` - the paper's reported value for the same cell (only beside a number of ours);
* ``X_delta`` - ``X - X_paper`` of the two values as shown (ours minus paper; empty when one
  side is missing);
* ``status`` - ``ok``, ``partial (missing ...)``, ``missing (no result)``,
  ``skipped (<reason>)`` on rows of ours (numbers of a skipped row are always empty),
  ``reported`` on the paper's rows;
* ``paper_note`` (tables 1, 2, 6, 7) - the citation and remarks of the paper's rows (the
  reference data's notes without the remarks on how the PDF was read, and without the
  ``type:`` part, which is Table 6's ``type`` column);
* ``aver+aver+aver`` columns (Tables 1/2/7, 3, 5) - the same model with averaging at every
  boundary (the SNN equal to its quantized ANN), beside the main policy: how much of the
  SNN-ANN gap comes from running each layer at its own T. No paper counterpart; they do
  not count towards ``status``.

What our numbers are (the scale's data note, ``make_table(note=...)``) is no column: it is
kept in ``attrs["notes"]`` per dataset and written once, after the caption.

Precision rule (the returned frame, the CSV, the Markdown and the LaTeX alike): accuracies,
their intervals and differences (percentage points), timesteps and bits with 2 decimals
(:data:`DECIMALS`); energies, firing rates and energy ratios with 3 significant digits
(:data:`SIG_DIGITS`, :data:`SIG_COLUMNS`); ``n``, ``L`` and ``case`` as integers; infinity as
``inf`` in the CSV and ``INF`` in the Markdown/LaTeX. Deltas are taken between the rounded
values, so ``X_delta == X - X_paper`` holds for the numbers as printed.

Renderings (:func:`write_table`): the CSV keeps every column; the Markdown (pandas
``to_markdown``) and the LaTeX (pandas ``Styler.to_latex``, booktabs rules, wrapped caption
and text columns) show the same columns, with dataset and architecture labels.

Modules: :mod:`~qac.report.tables.columns` (column sets, precision rule),
:mod:`~qac.report.tables.lookup` (tidy lookups, cells, statuses, paper notes),
:mod:`~qac.report.tables.rows` (one row builder per table), :mod:`~qac.report.tables.build`
(:func:`make_table`, :func:`expected_rows`), :mod:`~qac.report.tables.render` (Markdown,
LaTeX, files).
"""

from __future__ import annotations

from qac.report.tables import columns as _columns
from qac.report.tables.build import expected_rows, make_table
from qac.report.tables.columns import *  # noqa: F403  (the column conventions, see __all__)
from qac.report.tables.lookup import cell_sort_key
from qac.report.tables.render import table_latex, table_markdown, write_table

#: Kept for :mod:`qac.report.figures`, which sorts its panels like the tables' rows.
_cell_sort_key = cell_sort_key

__all__ = [
    *_columns.__all__,
    "make_table",
    "expected_rows",
    "write_table",
    "table_markdown",
    "table_latex",
    "cell_sort_key",
]
