"""Argument types and shared options of the ``qac`` subcommands.

Argparse turns an argument type's ``ArgumentTypeError`` into one line naming the option, so
every value is checked before a checkpoint or dataset is read.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from qac.align import AlignmentPolicy
from qac.experiments import Model, SNNSetting


def int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def policy(text: str) -> str:
    """An alignment policy name that :meth:`qac.align.AlignmentPolicy.parse` knows."""
    try:
        AlignmentPolicy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def v0_option(text: str) -> str | float:
    if text in ("half", "zero"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"v0 takes half, zero or a number, got {text!r}") from None


def timesteps_list(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4] (each >= 1, at least one)."""
    values = [int_at_least(1)(x.strip()) for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def snn_setting(text: str) -> SNNSetting:
    """``--snn`` value: :meth:`qac.experiments.SNNSetting.parse` (see ``qac evaluate -h``)."""
    try:
        return SNNSetting.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_id(text: str) -> Model:
    """``--model-id`` value: ``<dataset>/<arch>/<act>`` (:meth:`qac.experiments.Model.parse`)."""
    try:
        return Model.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def checkpoint_args(parser: argparse.ArgumentParser, out_help: str) -> None:
    """``--checkpoint``, ``--arch`` and ``--out`` (described by ``out_help``)."""
    parser.add_argument("--checkpoint", required=True, help="model.pt written by 'qac train'")
    parser.add_argument("--arch", help="fail unless the checkpoint holds this architecture")
    parser.add_argument("--out", required=True, help=out_help)


def choice_arg(parser: argparse.ArgumentParser, flag: str, choices: list[str], text: str) -> None:
    """An option taking one of ``choices``, the first being its default."""
    parser.add_argument(flag, default=choices[0], choices=choices, help=text)


def data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data (defaults: what the checkpoint was trained on)")
    g.add_argument(
        "--data",
        help="dataset source: cifar10, cifar100, imagenet, folder:DIR, "
        "tar:FILE, synthetic-cifar10, ...",
    )
    g.add_argument("--data-root", help="directory holding the datasets (default: data)")
    g.add_argument("--cache-dir", help="cache for extracted/decoded images")
    g.add_argument(
        "--limit", type=int_at_least(1), help="evaluate on a class-balanced subset of N images"
    )
    g.add_argument("--batch-size", type=int_at_least(1), default=256, help="evaluation batch size")
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument(
        "--float64",
        action="store_true",
        help="evaluate in double precision (exact SNN == ANN comparisons)",
    )
