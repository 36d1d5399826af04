"""Calibration options of Sec. 4.4 / 5.4: where the unlabeled images come from, which optimizer
takes the steps (Algorithm 1's plain gradient step or Adam), and the revert rule (ours), which is
reported in the calibration record, the evaluation JSON and the table notes whenever it fires."""

import json

import pytest
import torch

from qac.calibrate import CalibrationConfig, calibrate, calibration_images
from qac.cli import main
from qac.report.collect import _calibration_note
from qac.train import train
from tests.train_helpers import tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib")
    cfg = tiny_config(
        epochs=1, activation={"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 3}
    )
    train(cfg, out)
    return out / "model.pt"


def fake_split(split: str, n: int) -> torch.Tensor:
    value = {"train": 1.0, "test": 2.0}[split]
    return torch.full((n, 3, 8, 8), value)


def test_sources_draw_from_the_named_split_or_from_noise():
    assert calibration_images("train", 5, fake_split).eq(1.0).all()
    assert calibration_images("test", 4, fake_split).eq(2.0).all()
    noise = calibration_images("noise", 6, fake_split)
    assert noise.shape == (6, 3, 8, 8) and noise.dtype == torch.float32
    assert torch.equal(noise, calibration_images("noise", 6, fake_split))  # seeded
    assert abs(float(noise.mean())) < 0.2 and 0.8 < float(noise.std()) < 1.2
    with pytest.raises(ValueError, match="source must be one of"):
        calibration_images("val", 4, fake_split)


def test_unknown_optimizer_is_one_line():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        CalibrationConfig(optimizer="rmsprop")


def test_sgd_and_adam_take_different_steps(checkpoint):
    """optimizer='sgd' (Algorithm 1, l. 29-30) is used: it moves v_th, and not as Adam does."""
    from qac.checkpoint import load_model

    model, _ = load_model(checkpoint)
    model = model.double().eval()
    images = torch.randn(
        8, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    cfg = CalibrationConfig(
        epochs=1, lr=1e-2, batch_size=8, optimizer="sgd", revert_if_worse=False, progress=False
    )
    result = calibrate(model, images, cfg)
    assert not result["reverted"]
    moved = [float(layer["v_th"]) for layer in result["trained_state"].values()]
    assert any(m != pytest.approx(0) for m in moved)
    adam = calibrate(model, images, CalibrationConfig(**{**vars(cfg), "optimizer": "adam"}))
    differs = [
        not torch.equal(a["v_th"], b["v_th"])
        for a, b in zip(
            result["trained_state"].values(), adam["trained_state"].values(), strict=True
        )
    ]
    assert any(differs)


def test_revert_rule_can_be_switched_off(checkpoint):
    from qac.checkpoint import load_model

    model, _ = load_model(checkpoint)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    huge = CalibrationConfig(epochs=2, lr=50.0, batch_size=8, progress=False)  # overshoots
    kept = calibrate(model, images, huge)
    forced = calibrate(model, images, CalibrationConfig(**{**vars(huge), "revert_if_worse": False}))
    assert kept["reverted"] and not forced["reverted"]
    layer = next(iter(kept["state"]))
    assert not torch.equal(kept["state"][layer]["v_th"], forced["state"][layer]["v_th"])
    assert torch.equal(forced["state"][layer]["v_th"], forced["trained_state"][layer]["v_th"])


def test_cli_records_source_optimizer_and_revert_through_to_evaluation(checkpoint, tmp_path):
    cal, metrics, ev = tmp_path / "cal.pt", tmp_path / "cal.json", tmp_path / "ev.json"
    args = ["calibrate", "--checkpoint", str(checkpoint), "--out", str(cal), "--metrics",
            str(metrics), "--source", "noise", "--optimizer", "sgd", "--samples", "16",
            "--epochs", "1", "--limit", "64", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    record = json.loads(metrics.read_text())
    assert record["source"] == "noise" and record["config"]["optimizer"] == "sgd"
    assert {"reverted", "loss_before", "loss_after", "snn_acc_before", "snn_acc_after"} <= set(
        record
    )
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--calibration", str(cal),
                 "--out", str(ev), "--snn", "aver+aver,cal", "--limit", "64",
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads(ev.read_text())["calibration"]["source"] == "noise"


def test_table_note_says_when_calibration_was_reverted():
    assert _calibration_note({"reverted": False, "loss_before": 1.0, "loss_after": 0.5}) == ""
    note = _calibration_note(
        {
            "reverted": True,
            "loss_before": 1.0,
            "loss_after": 1.5,
            "snn_acc_before": 40.0,
            "snn_acc_after": 38.5,
        }  # fmt: skip
    )
    assert "calibration reverted" in note and "40.00% before" in note and "38.50%" in note
