"""Regenerate the golden smoke snapshot (tests/golden/smoke_tidy.csv) from a smoke run.

Usage (deliberately, after a change that is meant to change smoke numbers):

    .venv/bin/snakemake --cores 2 all --config scale=smoke
    .venv/bin/python scripts/update_golden.py results/smoke
"""

import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["table", "dataset", "architecture", "method", "quantity", "T", "L", "k",
           "alignment", "calibration", "case", "value", "unit"]  # fmt: skip


def main(results_dir: str) -> int:
    tidy = pd.read_csv(Path(results_dir) / "tidy.csv")
    out = Path(__file__).resolve().parents[1] / "tests" / "golden" / "smoke_tidy.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tidy[COLUMNS].to_csv(out, index=False)
    print(f"wrote {len(tidy)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/smoke"))
