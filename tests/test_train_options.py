"""Every training job the workflow plans is a valid TrainConfig, at every scale."""

from __future__ import annotations

import pytest

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
