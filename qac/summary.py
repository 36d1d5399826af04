"""Comparison with the paper, the paper's claims checked on our results, and the paper's audit.

``python -m qac.summary --scale S --tidy results/S/tidy.csv --out-dir results/S`` writes
``comparison.csv``, ``comparison.md``, ``claims.md`` and ``audit.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from qac.audit import audit, audit_markdown
from qac.claims import check_all, claims_markdown
from qac.compare import compare, write_comparison
from qac.io import atomic_write_text
from qac.report import reference_rows

__all__ = ["write_summary"]


def write_summary(tidy: pd.DataFrame, scale: str, out_dir: str | Path, note: str = "") -> dict:
    out = Path(out_dir)
    table = compare(reference_rows(tidy), scale=scale)  # tables 1-8 only: one row per key
    paths = write_comparison(table, out, heading=f"Comparison with the paper ({scale} scale)")
    claims = check_all(tidy)
    text = claims_markdown(claims, heading=f"The paper's claims on our {scale}-scale results")
    if note:
        text = f"> {note}\n\n{text}"
    atomic_write_text(out / "claims.md", text)
    atomic_write_text(out / "audit.md", audit_markdown(audit()))
    paths.update({"claims": out / "claims.md", "audit": out / "audit.md"})
    return {"paths": paths, "claims": {c.id: c.status for c in claims}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qac.summary", description=__doc__)
    parser.add_argument("--scale", required=True)
    parser.add_argument("--tidy", required=True, help="tidy results CSV (python -m qac.report)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    tidy_path = Path(args.tidy)
    if not tidy_path.is_file():
        print(f"qac.summary: error: {tidy_path} does not exist", file=sys.stderr)
        return 2
    result = write_summary(pd.read_csv(tidy_path), args.scale, args.out_dir, args.note)
    print(", ".join(f"{k}: {v}" for k, v in result["claims"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
