"""Training reliability: one run per configuration (a changed option retrains cleanly, also through
the workflow), a lock on the training directory, and typed training options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import qac.train as train_mod
from qac.checkpoint import CheckpointLockedError, directory_lock
from qac.cli import main
from qac.train import ConfigError, TrainConfig, run_directory, train
from tests.train_helpers import kill_at_epoch

SYNTH = {"train_size": 128, "test_size": 64}
TINY = {
    "arch": "resnet20",
    "width": 0.25,
    "dataset": "synthetic-cifar10",
    "data_options": SYNTH,
    "epochs": 1,
    "batch_size": 64,
    "lr": 0.05,
    "progress": False,
}
TARGET = "checkpoints/smoke/cifar10/resnet20/qac-c4/model.pt"


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **overrides})


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state_dict"]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = state_dict(a), state_dict(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def no_training(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("trained although a completed run could be reused")

    monkeypatch.setattr(train_mod, "_train_run", fail)


# --------------------------------------------------------------------------------------------
# one run per configuration
# --------------------------------------------------------------------------------------------
def test_changed_option_trains_a_fresh_run_and_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "model"
    first, second = tiny(), tiny(lr=0.02)
    train(first, out)
    old_run = run_directory(out, first.fingerprint())
    old_model = (old_run / "model.pt").read_bytes()
    (out / "model.pt").unlink()  # what Snakemake does before rerunning the job

    metrics = train(second, out)
    assert metrics["config"]["lr"] == 0.02 and metrics["fingerprint"] == second.fingerprint()
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert torch.load(out / "model.pt", weights_only=False)["config"]["lr"] == 0.02
    assert len((out / "log.jsonl").read_text().splitlines()) == second.epochs
    assert (old_run / "model.pt").read_bytes() == old_model  # the old run is untouched
    assert not list(out.rglob("state.pt"))  # completed runs keep no resume state

    no_training(monkeypatch)  # switching back copies the completed run
    assert train(tiny(), out)["fingerprint"] == first.fingerprint()
    assert (out / "model.pt").read_bytes() == old_model


def test_numbers_as_strings_share_the_run_of_the_numbers(tmp_path, monkeypatch):
    train(tiny(weight_decay=5e-4), tmp_path)
    no_training(monkeypatch)
    train(tiny(weight_decay="5e-4"), tmp_path)


def test_no_resume_discards_the_completed_run(tmp_path, monkeypatch):
    cfg = tiny()
    train(cfg, tmp_path)
    calls = []
    monkeypatch.setattr(train_mod, "_train_run", lambda c, run_dir: calls.append(run_dir))
    with pytest.raises(FileNotFoundError):  # the stub trains nothing: nothing to publish
        train(cfg, tmp_path, resume=False)
    assert calls == [run_directory(tmp_path, cfg.fingerprint())]
    assert not calls[0].exists()  # the earlier run of this configuration was deleted


def test_state_left_by_an_older_version_is_resumed(tmp_path, monkeypatch):
    cfg = tiny(epochs=2)
    kill_at_epoch(cfg, tmp_path / "old", monkeypatch)
    run_dir = run_directory(tmp_path / "old", cfg.fingerprint())
    (run_dir / "state.pt").rename(tmp_path / "old" / "state.pt")  # the layout before runs/
    train(cfg, tmp_path / "old")
    train(cfg, tmp_path / "new")
    assert same_weights(tmp_path / "old" / "model.pt", tmp_path / "new" / "model.pt")
    assert not (tmp_path / "old" / "state.pt").exists()


@pytest.mark.slow
def test_workflow_retrains_after_a_changed_training_option(tmp_path):
    from test_workflow import snakemake

    def run(*config: str) -> None:
        proc = snakemake(tmp_path, "--cores", "1", TARGET, "--config", "scale=smoke", *config)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run()
    first = (tmp_path / TARGET).read_bytes()
    run("train={epochs: 2}")
    payload = torch.load(tmp_path / TARGET, weights_only=False)
    assert payload["config"]["epochs"] == 2
    metrics = json.loads((tmp_path / TARGET).with_name("metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["fingerprint"] == payload["metrics"]["fingerprint"]
    assert len((tmp_path / TARGET).with_name("log.jsonl").read_text().splitlines()) == 2
    run("train={epochs: 1}")  # back to the first configuration: its run is reused
    assert (tmp_path / TARGET).read_bytes() == first


# --------------------------------------------------------------------------------------------
# lock on the training directory
# --------------------------------------------------------------------------------------------
def test_second_trainer_stops_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    def no_data(*args, **kwargs):
        raise AssertionError("loaded data although the directory is locked")

    monkeypatch.setattr(train_mod, "_loaders", no_data)
    with directory_lock(tmp_path):
        rc = main(["train", "--out", str(tmp_path), "--set", "epochs=1", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"another qac train (pid {os.getpid()}) is using {tmp_path}" in err
    assert "choose another --out" in err


def test_lock_of_another_process_names_it_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from qac.checkpoint import directory_lock
                with directory_lock({str(tmp_path)!r}):
                    print("locked", flush=True)
                    time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointLockedError, match=f"pid {holder.pid}"):
            train(tiny(), tmp_path)
    finally:
        holder.kill()
        holder.wait()
    with directory_lock(tmp_path):  # a killed holder leaves no lock behind
        pass


def test_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("crashed")

    monkeypatch.setattr(train_mod, "_train_run", crash)
    (tmp_path / "metrics.json").write_text("{}")  # left from a model Snakemake has deleted
    with pytest.raises(RuntimeError, match="crashed"):
        train(tiny(), tmp_path)
    with directory_lock(tmp_path):
        pass
    assert not (tmp_path / "metrics.json").exists()  # no metrics without their model


# --------------------------------------------------------------------------------------------
# typed options
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, expected",
    [
        ({"weight_decay": "5e-4"}, {"weight_decay": 5e-4}),
        ({"lr": "1E-3"}, {"lr": 1e-3}),
        ({"momentum": ".5"}, {"momentum": 0.5}),
        ({"width": 1}, {"width": 1.0}),
        ({"quantizer_lr": None, "quantizer_weight_decay": "0"}, {"quantizer_weight_decay": 0.0}),
        ({"epochs": "3", "batch_size": 32.0}, {"epochs": 3, "batch_size": 32}),
        ({"bf16": "TRUE", "float64": "false"}, {"bf16": True, "float64": False}),
        ({"augment": {"flip": "False", "cutout": "8"}}, {"augment": {"flip": False, "cutout": 8}}),
    ],
)
def test_options_are_converted_to_their_declared_types(values, expected):
    cfg = TrainConfig.from_dict(values)
    for name, value in expected.items():
        assert getattr(cfg, name) == value and type(getattr(cfg, name)) is type(value)


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"weight_decay": "abc"}, "option weight_decay='abc' is not a finite number"),
        ({"lr": "nan"}, "option lr='nan' is not a finite number"),
        ({"lr": True}, "option lr=True is not a finite number"),
        ({"epochs": 2.5}, "option epochs=2.5 is not an integer"),
        ({"epochs": True}, "option epochs=True is not an integer"),
        ({"bf16": "maybe"}, "option bf16='maybe' is not true or false"),
        ({"bf16": 2}, "option bf16=2 is not true or false"),
        ({"augment": {"flip": "maybe"}}, "option augment.flip='maybe' is not true or false"),
        ({"augment": {"flip": "yes"}}, "option augment.flip='yes' is not true or false"),
        ({"augment": {"crop_padding": 2.5}}, "option augment.crop_padding=2.5 is not an integer"),
        ({"augment": {"flipp": True}}, "unknown augment option(s) ['flipp']"),
        ({"augment": "none"}, "option augment='none' is not a mapping"),
        ({"arch": 20}, "option arch=20 is not a string"),
        ({"activation": "qac"}, "option activation='qac' is not a mapping"),
        ({"eval_every": 0}, "eval_every must be >= 1, got 0"),
    ],
)
def test_bad_option_values_are_named(values, needle):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert needle in str(info.value) and len(str(info.value).splitlines()) == 1


def test_validate_converts_a_config_built_in_python():
    cfg = TrainConfig(lr="1e-3", augment={"flip": "true"})
    cfg.validate()
    assert cfg.lr == 1e-3 and cfg.augment == {"flip": True}


def test_cli_rejects_a_bad_boolean_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_mod, "_loaders", lambda *a: pytest.fail("loaded data"))
    rc = main(["train", "--out", str(tmp_path), "--set", "augment.flip=maybe"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == "qac train: error: option augment.flip='maybe' is not true or false"


def test_cli_numbers_from_yaml_and_set_arrive_as_floats(tmp_path, monkeypatch):
    seen: list[TrainConfig] = []

    def fake_train(cfg, out, resume=True):
        seen.append(cfg)
        return {"ann_acc": 0.0}

    monkeypatch.setattr(train_mod, "train", fake_train)
    config = tmp_path / "cfg.yaml"
    config.write_text("weight_decay: 5e-4\n")  # YAML 1.1 reads 5e-4 as a string
    argv = ["train", "--config", str(config), "--set", "lr=1e-3", "--out", "x"]
    assert main([*argv, "--config-json", '{"momentum": "0.5", "augment": {"flip": "false"}}']) == 0
    assert seen[0].weight_decay == 5e-4 and seen[0].lr == 1e-3 and seen[0].momentum == 0.5
    assert seen[0].augment == {"flip": False}
