"""Assertions on paper-scale results (`pytest -m paper`): skipped unless they exist.

After `snakemake --cores 8 all --config scale=paper`, every reproduced cell must be within the
paper-scale tolerance of qac.compare (1 percentage point for accuracies, 0.5 for average
timesteps), and the paper's claims must hold on our numbers.
"""

from pathlib import Path

import pandas as pd
import pytest

from qac.paper.claims import check_all
from qac.paper.compare import compare
from qac.report.collect import reference_rows

REPO = Path(__file__).resolve().parents[1]
TIDY = REPO / "results" / "paper" / "tidy.csv"

pytestmark = [
    pytest.mark.paper,
    pytest.mark.skipif(not TIDY.exists(), reason=f"no paper-scale results at {TIDY}"),
]


def test_reproduced_cells_are_within_tolerance():
    table = compare(reference_rows(pd.read_csv(TIDY)), scale="paper")
    ours = table[table["verdict"].isin(["reproduced", "not-reproduced", "inconclusive"])]
    assert len(ours) > 0
    differs = ours[ours["verdict"] == "not-reproduced"]
    assert differs.empty, differs.head(20).to_string()


def test_claims_hold_at_paper_scale():
    results = check_all(pd.read_csv(TIDY))
    failing = [(c.id, c.details) for c in results if c.status == "fails"]
    assert not failing, failing
