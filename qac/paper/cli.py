"""``qac paper compare|claims|audit|summary``: our results beside the paper (workflow rule
``summary``).  Bad input exits with status 2 and one ``qac paper: error: ...`` line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

__all__ = ["add_commands", "run"]


def _tidy(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return pd.read_csv(path)


def cmd_compare(args: argparse.Namespace) -> int:
    from qac.paper.summary import write_compare

    paths = write_compare(_tidy(args.tidy), args.scale, args.out_dir)
    print(", ".join(str(p) for p in paths.values()))
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from qac.paper.summary import write_claims

    claims = write_claims(_tidy(args.tidy), args.scale, args.out, args.note)
    print(", ".join(f"{c.id}: {c.status}" for c in claims))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from qac.paper.summary import write_audit

    print(write_audit(args.out))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from qac.paper.summary import write_summary

    result = write_summary(_tidy(args.tidy), args.scale, args.out_dir, args.note)
    print(", ".join(f"{k}: {v}" for k, v in result["claims"].items()))
    return 0


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add ``compare``, ``claims``, ``audit`` and ``summary`` to ``parser`` (``qac paper``)."""
    sub = parser.add_subparsers(dest="paper_command", required=True)

    def inputs(c: argparse.ArgumentParser) -> None:
        c.add_argument("--scale", required=True, help="workflow scale of the results")
        c.add_argument("--tidy", required=True, help="tidy results CSV ('qac report collect')")

    c = sub.add_parser("compare", help="comparison.csv + comparison.md: every reported number")
    inputs(c)
    c.add_argument("--out-dir", required=True)
    c.set_defaults(paper_func=cmd_compare)

    c = sub.add_parser("claims", help="claims.md: the paper's claims C1-C7 on our results")
    inputs(c)
    c.add_argument("--out", required=True, help="Markdown file to write")
    c.add_argument("--note", default="", help="quoted above the claims")
    c.set_defaults(paper_func=cmd_claims)

    c = sub.add_parser("audit", help="audit.md: where the paper disagrees with itself")
    c.add_argument("--out", required=True, help="Markdown file to write")
    c.set_defaults(paper_func=cmd_audit)

    c = sub.add_parser("summary", help="comparison.{csv,md}, claims.md and audit.md in one go")
    inputs(c)
    c.add_argument("--out-dir", required=True)
    c.add_argument("--note", default="", help="quoted above the claims")
    c.set_defaults(paper_func=cmd_summary)


def run(args: argparse.Namespace) -> int:
    """Run the ``qac paper`` subcommand parsed into ``args``."""
    return int(args.paper_func(args))
