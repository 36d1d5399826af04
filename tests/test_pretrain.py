"""Float pretraining and quantized fine-tunes: TrainConfig.init_from (weights loaded exactly,
quantizer parameters at their initial values, one-line errors, content-hashed fingerprint) and
the workflow's ``pretrain`` (one relu train job per (dataset, arch), the others depending on it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qac.train as train_mod
from qac.convert import quantizers
from qac.experiments import ARTIFACTS, FLOAT_ACT, Activation, Model
from qac.models import build
from qac.train import ConfigError, TrainConfig, train
from qac.workflow import (
    PRESET_DIR,
    SCALES,
    all_models,
    checkpoint_file,
    models_for,
    pretrain_model,
    pretrain_models,
    resolve_config,
    train_options,
)
from tests.train_helpers import kill_at_epoch, tiny_config

REPO = Path(__file__).resolve().parents[1]
QAC = {"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 4}
FAST = {"width": 0.125, "epochs": 1, "float64": True, "data_options": {"train_size": 128}}


def relu_config(**overrides) -> TrainConfig:
    return tiny_config(**{**FAST, "activation": {"name": "relu"}, **overrides})


def qac_config(source: Path | None, **overrides) -> TrainConfig:
    init = None if source is None else str(source)
    return tiny_config(**{**FAST, "activation": QAC, "init_from": init, **overrides})


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A float (ReLU) ResNet-20 trained one epoch: the pretraining checkpoint."""
    out = tmp_path_factory.mktemp("relu")
    train(relu_config(), out)
    return out / "model.pt"


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state_dict"]


# ---------------------------------------------------------------------------- init_from
def test_init_from_loads_every_weight_and_keeps_the_quantizers_at_init(
    source, tmp_path, monkeypatch
):
    seen = {}
    real = train_mod.train_epoch

    def first_epoch(cfg, epoch, net, *args):
        if epoch == 0:
            seen.update({k: v.clone() for k, v in net.state_dict().items()})
        return real(cfg, epoch, net, *args)

    monkeypatch.setattr(train_mod, "train_epoch", first_epoch)
    metrics = train(qac_config(source), tmp_path / "ft")
    src = state_of(source)
    fresh = build("resnet20", 10, QAC, width=0.125).to(torch.float64)
    q_keys = {f"{n}.{k}" for n, q in quantizers(fresh) for k in q.state_dict()}
    assert q_keys and set(seen) == set(src) | q_keys and not set(src) & q_keys
    for key, value in seen.items():
        expected = src[key] if key in src else fresh.state_dict()[key]
        assert torch.equal(value, expected), key  # exact: float64 source into a float64 model
    digest = metrics["init_from"]["sha256"]
    assert metrics["init_from"] == {"path": str(source), "sha256": digest} and len(digest) == 64
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["init_from"]["sha256"]


def test_without_init_from_nothing_changes(tmp_path):
    cfg = tiny_config()
    assert cfg.init_from is None
    assert TrainConfig().fingerprint() == "2d27ac4f9e7c536e"  # the fingerprint of earlier versions
    metrics = train(qac_config(None), tmp_path / "plain")
    assert "init_from" not in metrics


def test_a_resumed_run_keeps_its_trained_weights(source, tmp_path, monkeypatch):
    cfg = qac_config(source, epochs=2)
    train(cfg, tmp_path / "full")
    kill_at_epoch(cfg, tmp_path / "resumed", monkeypatch)
    loads = []
    monkeypatch.setattr(train_mod, "load_init", lambda *a: loads.append(a))  # preflight's too
    train(cfg, tmp_path / "resumed")
    assert len(loads) == 1  # the preflight check only: the state holds the weights
    full, resumed = (
        state_of(tmp_path / "full" / "model.pt"),
        state_of(tmp_path / "resumed" / "model.pt"),
    )
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_missing_source_is_named_before_any_work(tmp_path):
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(ConfigError, match=rf"init_from {missing} does not exist: .*relu"):
        train(qac_config(missing), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="is a directory"):
        train(qac_config(tmp_path), tmp_path / "out")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"width": 0.25},
            "holds a resnet20 of width 0.125, but this run trains a resnet20 of width 0.25",
        ),
        ({"arch": "vgg16"}, "holds a resnet20 .* but this run trains a vgg16"),
    ],
)
def test_other_architecture_or_width_is_refused(source, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(qac_config(source, **overrides), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_key_or_shape_that_does_not_fit_is_named(source, tmp_path):
    payload = torch.load(source, weights_only=False)
    state = payload["state_dict"]
    key = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    cases = {
        "shape": ({**state, key: state[key][:1]}, rf"{key} has shape \(1, .*\) there but \(\d+,"),
        "lacks": ({k: v for k, v in state.items() if k != key}, rf"lacks {key} \(shape \("),
        "extra": (
            {**state, "extra.weight": torch.zeros(2)},
            r"holds extra.weight \(shape \(2,\)\)",
        ),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save({**payload, "state_dict": bad}, path)
        with pytest.raises(ConfigError, match=message) as info:
            train(qac_config(path), tmp_path / name)
        assert "\n" not in str(info.value) and not (tmp_path / name).exists()
    with pytest.raises(ConfigError, match=r"has shape \(10, 8\) there but \(100, 8\)"):
        train(qac_config(source, dataset="synthetic-cifar100"), tmp_path / "classes")
    assert not (tmp_path / "classes").exists()  # the dataset's classes are known up front


def test_fingerprint_follows_the_source_content(source, tmp_path):
    copy = tmp_path / "copy.pt"
    shutil.copyfile(source, copy)
    base = qac_config(source).fingerprint()
    assert qac_config(source).fingerprint() == base
    assert qac_config(copy).fingerprint() == base  # the content counts, not the path
    assert base != qac_config(None).fingerprint()
    payload = torch.load(copy, weights_only=False)
    next(iter(payload["state_dict"].values())).add_(1.0)
    torch.save(payload, copy)
    os.utime(copy, ns=(1, 1))  # a new version even where mtime resolution is coarse
    assert qac_config(copy).fingerprint() != base
    with pytest.raises(ConfigError, match="does not exist"):
        qac_config(tmp_path / "gone.pt").fingerprint()


# ---------------------------------------------------------------------------- workflow
def test_relu_is_a_float_activation_of_no_artifact():
    relu = Activation.parse("relu")
    assert relu.options() == {"name": "relu"} and relu.case is None and relu.levels is None
    assert relu.format() == "relu" and not relu.quantized and Activation.parse("qac-c4").quantized
    # no artifact is computed from a relu model, at any scale, with or without `pretrain` (and
    # with the datasets a scale lacks: include_unavailable)
    for scale in SCALES:
        for pretrain in (None, {"epochs": 1}):
            cfg = resolve_config({"scale": scale, "pretrain": pretrain}, PRESET_DIR)
            for art in ARTIFACTS:
                acts = {m.act for m in models_for(cfg, art, include_unavailable=True)}
                assert acts and FLOAT_ACT not in acts, (scale, pretrain, art)
    # the cpu preset pretrains: relu models are trained (pretrain_models), never evaluated
    cpu = resolve_config({"scale": "cpu"}, PRESET_DIR)
    assert cpu.get("pretrain") is not None
    models, relus = all_models(cpu), pretrain_models(cpu)
    assert models and not any(m.act == FLOAT_ACT for m in models)
    assert relus and all(m.act == FLOAT_ACT for m in relus)
    assert {(m.dataset, m.arch) for m in relus} == {(m.dataset, m.arch) for m in models}


def test_pretrain_sets_init_from_and_the_relu_options():
    user = {"scale": "cpu", "pretrain": {"epochs": 15, "lr": 0.2, "label_smoothing": 0.1}}
    cfg = resolve_config(user, PRESET_DIR)
    model = Model("cifar10", "resnet20", "qac-c4")
    relu = pretrain_model(cfg, model)
    assert relu == Model("cifar10", "resnet20", "relu") and pretrain_model(cfg, relu) is None
    opts = train_options(cfg, model)
    assert opts["init_from"] == "checkpoints/cpu/cifar10/resnet20/relu/model.pt"
    assert opts["init_from"] == checkpoint_file(cfg, relu)
    assert opts["epochs"] == cfg["train"]["epochs"]  # the fine-tune recipe is `train`
    relu_opts = train_options(cfg, relu)
    assert relu_opts["activation"] == {"name": "relu"} and "init_from" not in relu_opts
    assert (relu_opts["epochs"], relu_opts["lr"], relu_opts["label_smoothing"]) == (15, 0.2, 0.1)
    TrainConfig.from_dict(relu_opts)  # valid training options
    TrainConfig.from_dict(opts)
    pairs = {(m.dataset, m.arch) for m in all_models(cfg)}
    assert {(m.dataset, m.arch) for m in pretrain_models(cfg)} == pairs
    with pytest.raises(ValueError, match="pretrain"):
        resolve_config({"scale": "cpu", "pretrain": {"activation": {"name": "qac"}}}, PRESET_DIR)


def test_without_pretrain_every_model_trains_from_scratch():
    for scale in ("smoke", "cpu", "paper"):
        cfg = resolve_config({"scale": scale}, PRESET_DIR)
        if cfg.get("pretrain") is not None:  # a preset that pretrains (the CPU scale may)
            continue
        assert pretrain_models(cfg) == []
        assert all("init_from" not in train_options(cfg, m) for m in all_models(cfg))
    cfg = resolve_config({"scale": "paper", "pretrain": None}, PRESET_DIR)
    assert pretrain_models(cfg) == [] and cfg["train"].get("init_from") is None


def test_the_cpu_scale_without_pretraining_is_a_valid_from_scratch_grid():
    """`pretrain: null` on the cpu scale: no init_from, so the percentile start (which reads the
    float model) is cleared instead of failing every job."""
    cfg = resolve_config({"scale": "cpu", "pretrain": None}, PRESET_DIR)
    assert cfg["train"]["init_threshold_percentile"] is not None  # the preset does set it
    assert pretrain_models(cfg) == []
    for m in all_models(cfg):
        opts = train_options(cfg, m)
        assert "init_from" not in opts and opts["init_threshold_percentile"] is None, m
        TrainConfig.from_dict(opts)  # raises ConfigError on an inconsistent job


def test_threshold_percentile_needs_a_relu_source(source, tmp_path, capsys):
    quantized = tmp_path / "qac"
    train(qac_config(source), quantized)
    cfg = qac_config(quantized / "model.pt", init_threshold_percentile=99.0)
    with pytest.raises(ConfigError, match="ReLU model or unset the percentile"):
        train(cfg, tmp_path / "again")
    assert not (tmp_path / "again").exists()  # refused before any work


SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed")
def test_dry_run_trains_one_relu_model_per_pair_first(tmp_path):
    cfg = resolve_config({"scale": "smoke", "pretrain": {"epochs": 1}}, PRESET_DIR)
    cmd = [
        SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(tmp_path), "--workflow-profile", "none", "-n",
        "--config", "scale=smoke", "pretrain={epochs: 1}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    relus = pretrain_models(cfg)
    assert len(relus) >= 3 and out.count("act=relu") == len(relus)
    for m in relus:  # an input of the fine-tunes of its pair
        assert f"checkpoints/smoke/{m.path}/model.pt" in out
    jobs = len(all_models(cfg)) + len(relus)
    assert any(line.split() == ["train", str(jobs)] for line in out.splitlines())


# ------------------------------------------------------------------------------------------
# thresholds from the float model's activations
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "activation",
    [{"name": "qac", "case": c, "alpha": 4.0, "timesteps": 4} for c in (1, 2, 3, 4)]
    + [{"name": "qcfs", "levels": 4, "theta": 8.0}],
)
def test_thresholds_are_the_float_activation_percentiles(source, activation):
    from qac.checkpoint import load_checkpoint
    from qac.trainloop import init_thresholds

    payload = load_checkpoint(source)
    model = build("resnet20", 10, activation, width=0.125)
    model.load_state_dict(payload["state_dict"], strict=False)
    T_before = [q.timesteps for _, q in quantizers(model)]
    images = torch.randn(8, 3, 32, 32)
    thresholds = init_thresholds(model, payload, images, 99.0)
    float_model = build("resnet20", 10, {"name": "relu"}, width=0.125)
    float_model.load_state_dict(payload["state_dict"])
    outputs = {}
    for name, _ in quantizers(model):
        float_model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().double().flatten())
        )
    float_model.eval()(images)
    for (name, q), value in zip(quantizers(model), thresholds, strict=True):
        expected = float(torch.quantile(outputs[name][outputs[name] > 0], 0.99))
        assert value == pytest.approx(expected, rel=1e-6)  # returned
        assert q.threshold == pytest.approx(expected, rel=1e-6)  # and set on the model
    assert [q.timesteps for _, q in quantizers(model)] == pytest.approx(T_before)  # T kept


def test_training_starts_from_the_percentile_thresholds(source, tmp_path, monkeypatch):
    """`train` with init_threshold_percentile: the model of epoch 0 carries the thresholds
    computed from the float model on the first training batch (not the initial alpha 4)."""
    import qac.trainloop as trainloop

    calls, seen = [], {}
    real_init, real_epoch = train_mod.init_thresholds, train_mod.train_epoch

    def record_init(model, payload, images, percentile, channels_last=False):
        calls.append((images.shape, percentile))
        return real_init(model, payload, images, percentile, channels_last)

    def first_epoch(cfg, epoch, net, *args):
        if epoch == 0:
            seen["thresholds"] = [q.threshold for _, q in quantizers(net)]
        return real_epoch(cfg, epoch, net, *args)

    monkeypatch.setattr(train_mod, "init_thresholds", record_init)
    monkeypatch.setattr(train_mod, "train_epoch", first_epoch)
    cfg = qac_config(source, init_threshold_percentile=99.0)
    train(cfg, tmp_path / "ft")
    assert calls == [(torch.Size([cfg.batch_size, 3, 32, 32]), 99.0)]  # one batch, once
    # the same thresholds from a fresh model on the first batch of the training loader
    loader = train_mod._loaders(cfg, torch.device("cpu"), train_mod.world_from_env())[1]
    loader.set_epoch(0)
    images, _ = next(iter(loader))
    fresh = build("resnet20", 10, QAC, width=0.125).to(torch.float64)
    expected = trainloop.init_thresholds(fresh, torch.load(source, weights_only=False), images, 99)
    assert seen["thresholds"] == pytest.approx(expected, rel=1e-9)
    assert all(t != pytest.approx(4.0) for t in seen["thresholds"])


def test_threshold_percentile_needs_a_source_and_a_valid_value():
    with pytest.raises(ConfigError, match="needs init_from"):
        TrainConfig.from_dict({"init_threshold_percentile": 99.9})
    with pytest.raises(ConfigError, match=r"in \(0, 100\]"):
        TrainConfig.from_dict({"init_from": "x.pt", "init_threshold_percentile": 0})
    assert TrainConfig().fingerprint() == "2d27ac4f9e7c536e"  # unset: the old fingerprint
