"""Every training job the workflow plans is a valid TrainConfig, at every scale."""

from __future__ import annotations

import pytest

from qac.experiments import Model
from qac.trainconfig import ConfigError, TrainConfig
from qac.workflow import (
    PRESET_DIR,
    SCALES,
    all_models,
    pretrain_models,
    resolve_config,
    train_options,
)


@pytest.mark.parametrize("scale", SCALES)
def test_every_planned_training_job_is_a_valid_config(scale):
    cfg = resolve_config({"scale": scale}, PRESET_DIR)
    models = all_models(cfg) + pretrain_models(cfg)
    assert models
    for m in models:
        TrainConfig.from_dict(train_options(cfg, m))  # raises ConfigError naming the option


def test_color_jitter_from_yaml_is_a_tuple_of_numbers():
    cfg = TrainConfig.from_dict({"augment": {"color_jitter": [0.2, "0.2", 0.2, 0.1]}})
    assert cfg.augment["color_jitter"] == (0.2, 0.2, 0.2, 0.1)
    with pytest.raises(ConfigError, match=r"augment\.color_jitter=.*a list of finite numbers"):
        TrainConfig.from_dict({"augment": {"color_jitter": [0.2, "x", 0.2, 0.1]}})
    with pytest.raises(ConfigError, match="a list of finite numbers"):
        TrainConfig.from_dict({"augment": {"color_jitter": 0.2}})


def test_train_overrides_by_dataset_then_architecture_then_activation():
    user = {
        "scale": "smoke",
        "train_overrides": {
            "cifar10": {"lr": 0.3, "epochs": 2},
            "resnet20": {"lr": 0.2},
            "qac-c1": {"lr": 0.1},
        },
    }
    cfg = resolve_config(user, PRESET_DIR)
    c1 = train_options(cfg, Model("cifar10", "resnet20", "qac-c1"))
    c4 = train_options(cfg, Model("cifar10", "resnet20", "qac-c4"))
    assert (c1["lr"], c4["lr"], c1["epochs"], c4["epochs"]) == (0.1, 0.2, 2, 2)
    with pytest.raises(ValueError, match="train_overrides"):
        resolve_config({"scale": "smoke", "train_overrides": {"qac-c9": {"lr": 0.1}}}, PRESET_DIR)
