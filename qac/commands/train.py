"""``qac train``: quantization-aware training (Algorithm 1, lines 1-21)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qac.commands.inputs import check_output, merge, parse_set, read_yaml
from qac.train import ConfigError, TrainConfig


def add_parser(sub) -> None:
    """Add ``train`` to the subcommands ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "train", help="quantization-aware training (Algorithm 1, lines 1-21)"
    )
    p.add_argument("--config", help="YAML file of training options (see qac.train.TrainConfig)")
    p.add_argument("--config-json", help="training options as one JSON object (workflow use)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override an option, e.g. --set epochs=5 --set activation.case=4 (repeatable)",
    )
    p.add_argument("--out", required=True, help="output directory (model.pt, log.jsonl, ...)")
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start this configuration's run over (ignore its saved state and finished model)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _config(args) -> TrainConfig:
    """--config, then --config-json, then --set (and --no-progress) as a TrainConfig."""
    values = read_yaml(args.config)
    if args.config_json:
        try:
            values = merge(values, json.loads(args.config_json))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json is not valid JSON: {exc}") from exc
    values = merge(values, parse_set(args.set or []))
    if args.no_progress:
        values["progress"] = False
    try:
        return TrainConfig.from_dict(values)
    except TypeError as exc:  # a value of the wrong type that TrainConfig did not name
        raise ConfigError(f"bad training option value: {exc}") from exc


def run(args) -> int:
    from qac.distributed import world_from_env
    from qac.train import train

    cfg = _config(args)
    check_output(args.out, "--out", directory=True)
    metrics = train(cfg, args.out, resume=not args.no_resume)
    if world_from_env().main:  # under torchrun: one line, not one per process
        print(
            f"trained {cfg.arch} on {cfg.dataset}: test accuracy {metrics['ann_acc']:.2f}% "
            f"-> {Path(args.out) / 'model.pt'}"
        )
    return 0
