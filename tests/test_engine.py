"""Training, resumption, determinism, evaluation, calibration and the qac CLI on synthetic data."""

import json
import math
import subprocess
import sys

import pytest
import torch

import qac.train as train_mod
from qac.calibrate import CalibrationConfig, calibrate
from qac.checkpoint import load_model
from qac.cli import main
from qac.data import BatchLoader, load_dataset
from qac.evaluate import evaluate_ann, evaluate_snn, qcfs_sweep
from qac.train import ConfigError, TrainConfig, train
from tests.train_helpers import SYNTH, tiny_config


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match="unknown training option.*'epochz'"):
        TrainConfig.from_dict({"epochz": 3})


def test_same_seed_same_result_and_outputs(tmp_path):
    a = train(tiny_config(), tmp_path / "a")
    b = train(tiny_config(), tmp_path / "b")
    assert a["ann_acc"] == b["ann_acc"] and a["layers"] == b["layers"]
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert {"train_loss", "train_acc", "test_acc", "layers"} <= set(log[0])
    assert {"layer", "T", "alpha", "bits"} <= set(log[0]["layers"][0])
    train(tiny_config(seed=1), tmp_path / "c")
    sc = torch.load(tmp_path / "c" / "model.pt", weights_only=False)["state_dict"]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_interrupted_run_resumes_to_the_identical_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, warmup_epochs=1)
    train(cfg, tmp_path / "full")

    real = train_mod._lr_factor

    def crash_at_third_epoch(epoch, c):
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        return real(epoch, c)

    monkeypatch.setattr(train_mod, "_lr_factor", crash_at_third_epoch)
    for name in ("resumed", "legacy"):
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / name)
    run_dir = train_mod.run_directory(tmp_path / "resumed", cfg.fingerprint())
    assert not (tmp_path / "resumed" / "model.pt").exists()
    assert not (run_dir / "model.pt").exists()
    assert (run_dir / "state.pt").exists()
    assert not [p for p in (tmp_path / "resumed").rglob("*.tmp")]
    legacy = train_mod.run_directory(tmp_path / "legacy", cfg.fingerprint()) / "state.pt"
    state = torch.load(legacy, weights_only=False)
    assert state["scheduler"]["last_epoch"] == state["epoch"] == 1
    del state["scheduler"]  # a resume state written before the scheduler was saved
    torch.save(state, legacy)
    monkeypatch.setattr(train_mod, "_lr_factor", real)
    full = torch.load(tmp_path / "full" / "model.pt", weights_only=False)["state_dict"]
    for name in ("resumed", "legacy"):
        train(cfg, tmp_path / name)
        resumed = torch.load(tmp_path / name / "model.pt", weights_only=False)["state_dict"]
        assert all(torch.equal(full[k], resumed[k]) for k in full), name
        logs = [(tmp_path / d / "log.jsonl").read_text().splitlines() for d in ("full", name)]
        assert [json.loads(r)["lr"] for r in logs[0]] == [json.loads(r)["lr"] for r in logs[1]]
    assert not (run_dir / "state.pt").exists()  # a completed run keeps its model, not its state


@pytest.mark.parametrize("warmup", [0, 5])
def test_lr_schedule_equals_the_closed_form_at_every_epoch(warmup):
    """LambdaLR of _lr_factor: base lr x (linear warm-up, then half a cosine), bit for bit.

    (SequentialLR(LinearLR, CosineAnnealingLR) computes it recursively and differs by up to 13
    ulp at most epochs of 300.)"""
    cfg = tiny_config(epochs=300, warmup_epochs=warmup)
    optimizer = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": lr} for lr in (0.1, 0.02)])
    scheduler = train_mod._lr_schedule(optimizer, cfg)
    for epoch in range(300):
        if epoch > 0:
            optimizer.step()
            scheduler.step()
        if epoch < warmup:
            factor = (epoch + 1) / (warmup + 1)
        else:
            factor = 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (300 - warmup)))
        assert [g["lr"] for g in optimizer.param_groups] == [0.1 * factor, 0.02 * factor]


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(train_mod.TrainingDivergedError, match="lower the learning rate"):
        train(tiny_config(lr=1e12, epochs=1), tmp_path / "nan")
    assert not (tmp_path / "nan" / "model.pt").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    train(tiny_config(epochs=3), out)
    model, payload = load_model(out / "model.pt")
    test = load_dataset("synthetic-cifar10", "test", **SYNTH)
    return out, model.eval(), BatchLoader(test, 64, train=False)


def test_snn_with_averaging_everywhere_matches_the_ann_accuracy(trained):
    _, model, loader = trained
    ann = evaluate_ann(model, loader, dtype=torch.float64, progress=False)
    snn = evaluate_snn(model, loader, policy="aver+aver+aver", dtype=torch.float64, progress=False)
    assert snn["snn_acc"] == ann["ann_acc"]
    assert max(snn["conversion_error"].values()) < 1e-9
    assert snn["energy_pj_per_sample"] > 0 and snn["acs_per_sample"] >= 0
    assert 0 < snn["firing_rate"] < 1
    assert snn["avg_timesteps"] == ann["avg_timesteps"]


def test_qcfs_sweep_one_pass_equals_separate_runs(tmp_path):
    train(tiny_config(activation={"name": "qcfs", "levels": 4}, epochs=1), tmp_path)
    model, _ = load_model(tmp_path / "model.pt")
    test = load_dataset("synthetic-cifar10", "test", **SYNTH)
    loader = BatchLoader(test, 64, train=False)
    swept = qcfs_sweep(model, loader, [1, 2, 4], averaged=False, progress=False)
    for T in [1, 2, 4]:
        separate = evaluate_snn(model, loader, policy="qcfs", timesteps=T, progress=False)
        assert swept[T] == separate["snn_acc"]
    averaged = qcfs_sweep(model, loader, [1, 4], averaged=True, progress=False)
    assert averaged[1] == swept[1]  # at T = 1 averaging changes nothing


def test_calibration_reduces_its_own_loss(trained):
    _, model, _ = trained
    images = torch.cat(
        [
            x
            for x, _ in BatchLoader(
                load_dataset("synthetic-cifar10", "train", limit=128, **SYNTH), 64, train=False
            )
        ]
    )
    result = calibrate(model, images, CalibrationConfig(epochs=5, lr=5e-3, progress=False))
    assert result["loss_after"] < result["loss_before"] and not result["reverted"]
    first = next(iter(result["state"].values()))
    assert first["v0"].dim() == 1  # per channel
    assert first["v_th"].dim() == 0  # per layer


def test_cli_round_trip_train_evaluate_calibrate_info(tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "arch: resnet20\nwidth: 0.25\ndataset: synthetic-cifar10\n"
        "data_options: {train_size: 256, test_size: 128}\nepochs: 1\nbatch_size: 64\n"
        "activation: {name: qac, case: 4, alpha: 4.0, timesteps: 3}\n"
    )
    run = tmp_path / "run"
    assert (
        main(
            ["train", "--config", str(cfg), "--set", "lr=0.05", "--out", str(run), "--no-progress"]
        )
        == 0
    )
    ckpt = str(run / "model.pt")
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--out",
                str(tmp_path / "ev.json"),
                "--policy",
                "aver+aver",
                "--no-progress",
            ]
        )
        == 0
    )
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert 0 <= ev["snn"][0]["snn_acc"] <= 100 and ev["snn"][0]["policy"] == "aver+aver"
    assert (
        main(
            [
                "calibrate",
                "--checkpoint",
                ckpt,
                "--out",
                str(tmp_path / "cal.pt"),
                "--metrics",
                str(tmp_path / "cal.json"),
                "--samples",
                "64",
                "--epochs",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert {"loss_before", "loss_after", "snn_acc_before", "snn_acc_after"} <= set(cal)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--out",
                str(tmp_path / "ev2.json"),
                "--calibration",
                str(tmp_path / "cal.pt"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ev2.json").read_text())["snn"][0]["calibrated"] is True
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                ckpt,
                "--out",
                str(tmp_path / "ev3.json"),
                "--calibration",
                str(tmp_path / "cal.pt"),
                "--snn",
                "aver+aver,k=2",
                "--snn",
                "repl+trunc",
                "--snn",
                "aver+aver,cal",
                "--snn",
                "aver+aver+aver,f64",
                "--sweep",
                "1,2",
                "--no-progress",
            ]
        )
        == 0
    )
    ev3 = json.loads((tmp_path / "ev3.json").read_text())
    assert [r["setting"] for r in ev3["snn"]] == [
        "aver+aver,k=2",
        "repl+trunc",
        "aver+aver,cal",
        "aver+aver+aver,f64",
    ]
    assert [r["temporal_scale"] for r in ev3["snn"]] == [2, 1, 1, 1]
    assert ev3["snn"][3]["dtype"] == "float64"
    assert max(ev3["snn"][3]["conversion_error"].values()) < 1e-9
    assert set(ev3["qcfs_sweep"]) == {"T", "qcfs", "qcfs+aver", "num_samples"}
    assert ev3["qcfs_sweep"]["num_samples"] == ev3["ann"]["num_samples"]
    capsys.readouterr()
    assert main(["info", "--checkpoint", ckpt]) == 0
    out = capsys.readouterr().out
    assert "average T 3.000" in out and "stem.3" in out


def _fails(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_bad_inputs_exit_2_with_one_line_and_no_output(tmp_path, capsys):
    out = tmp_path / "x"
    _fails(capsys, ["train", "--out", str(out), "--set", "arch=resnet50"], "unknown architecture")
    _fails(
        capsys,
        [
            "train",
            "--out",
            str(out),
            "--set",
            "dataset=cifar10",
            "--set",
            f"data_root={tmp_path / 'nodata'}",
        ],
        "not found",
    )
    _fails(capsys, ["train", "--out", str(out), "--set", "epochz=1"], "epochz")
    assert not out.exists()
    _fails(
        capsys,
        ["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out / "e.json")],
        "does not exist",
    )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    _fails(capsys, ["info", "--checkpoint", str(bad)], "unreadable")
    assert not out.exists()


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path, capsys):
    run, _, _ = trained
    _fails(
        capsys,
        [
            "evaluate",
            "--checkpoint",
            str(run / "model.pt"),
            "--arch",
            "vgg16",
            "--out",
            str(tmp_path / "e.json"),
        ],
        "holds a resnet20 model",
    )
    assert not (tmp_path / "e.json").exists()


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "qac.cli", "evaluate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ["--policy", "--v0", "--k", "--calibration", "--sweep", "--float64"]:
        assert option in out


def test_average_timesteps_finite(trained):
    _, model, loader = trained
    assert math.isfinite(evaluate_ann(model, loader, progress=False)["avg_timesteps"])
