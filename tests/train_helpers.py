"""A tiny, fast training configuration shared by the engine and calibration tests."""

from __future__ import annotations

from typing import Any

from qac.train import TrainConfig

SYNTH = {"train_size": 256, "test_size": 128}


def tiny_config(**overrides: Any) -> TrainConfig:
    """QAC case-4 ResNet-20 (width 0.25) on 256 synthetic CIFAR-10 images, 2 epochs."""
    values = {
        "arch": "resnet20",
        "width": 0.25,
        "dataset": "synthetic-cifar10",
        "data_options": SYNTH,
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.05,
        "activation": {"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 4},
        "progress": False,
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)


def kill_at_epoch(cfg: TrainConfig, out: Any, monkeypatch: Any, epoch: int = 1) -> None:
    """Run ``qac.train.train(cfg, out)`` and interrupt it at the start of ``epoch`` (0-based),
    as a killed job would be: its resume state holds the epochs before."""
    import pytest

    import qac.train as train_mod

    real = train_mod._lr_factor

    def crash(e: int, c: TrainConfig) -> float:
        if e == epoch:
            raise KeyboardInterrupt("killed")
        return real(e, c)

    monkeypatch.setattr(train_mod, "_lr_factor", crash)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg, out)
    monkeypatch.setattr(train_mod, "_lr_factor", real)
