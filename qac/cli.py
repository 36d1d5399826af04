"""``qac`` command line: train, evaluate, calibrate, info (each step of Algorithm 1).

Every command takes explicit input/output paths so that Snakemake rules can call it, writes its
outputs atomically, and on a bad input exits with status 2 and one line saying what to do.
The subcommands live in :mod:`qac.commands` (one module each); ``report`` and ``paper`` in
:mod:`qac.report.cli` and :mod:`qac.paper.cli`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from qac.checkpoint import CheckpointError
from qac.commands import calibrate, evaluate, info, train
from qac.commands.inputs import key_name
from qac.data import DatasetNotFoundError
from qac.quant import InfiniteTimestepsError
from qac.runtime import DeviceError, prepare_process
from qac.train import ConfigError, TrainingDivergedError

USER_ERRORS = (
    CheckpointError,
    DatasetNotFoundError,
    ConfigError,
    DeviceError,
    TrainingDivergedError,
    InfiniteTimestepsError,
    FileNotFoundError,
    ValueError,
    KeyError,
)


def cmd_report(args) -> int:
    """``qac report ...``: tables, figures and captions (:mod:`qac.report.cli`)."""
    from qac.report.cli import run

    return run(args)


def cmd_paper(args) -> int:
    """``qac paper ...``: comparison, claims and audit against the paper (:mod:`qac.paper.cli`)."""
    from qac.paper.cli import run

    return run(args)


def _version() -> str:
    """qac-bench's version and torch's (from the installed package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("qac-bench")
    except PackageNotFoundError:  # running from a checkout that was never installed
        ours = "unknown (not installed)"
    return f"{ours} (torch {torch.__version__})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qac",
        description="QAC replication suite: train quantized ANNs, convert them to mixed-timestep "
        "SNNs, calibrate and evaluate (Algorithm 1 of the paper).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, evaluate, calibrate, info):
        command.add_parser(sub)

    from qac.paper.cli import add_commands as add_paper_commands
    from qac.report.cli import add_commands as add_report_commands

    p = sub.add_parser("report", help="tables, figures and captions from evaluation JSON files")
    add_report_commands(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("paper", help="compare, claims, audit, summary: our results vs the paper")
    add_paper_commands(p)
    p.set_defaults(func=cmd_paper)
    return parser


def _message(exc: BaseException, width: int = 600) -> str:
    """One line for the user: a KeyError names its key; a message over several lines, or one
    ending in ':' with its cause below (e.g. torch's state-dict errors), is joined with '; '."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and str(exc.args[0]).isidentifier():
        text = f"missing key {key_name(exc)}"
    else:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = exc.__cause__
    if lines and lines[-1].endswith(":") and cause is not None:
        below = [line.strip() for line in str(cause).splitlines() if line.strip()]
        lines += below[1:] if below and lines[-1].endswith(below[0]) else below
    message = "; ".join(lines) or type(exc).__name__
    return message if len(message) <= width else message[: width - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not prepare_process(f"qac {args.command}"):
        return 2
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"qac {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"qac {args.command}: interrupted (outputs are written atomically; rerun to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
