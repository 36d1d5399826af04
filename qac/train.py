"""Quantization-aware training (Algorithm 1, lines 1-21).

Every ReLU is a quantizer and every pooling layer averages (by construction in
:mod:`qac.models`); weights and quantizer parameters are trained together by SGD on the
cross-entropy loss. Defaults follow the QCFS recipe (SGD, momentum 0.9, lr 0.1, weight decay
5e-4 on every parameter, cosine schedule, 300 epochs); every value is configurable and what the
paper leaves open is recorded in ``docs/assumptions.md``.

Outputs in ``out_dir``: ``model.pt`` (final checkpoint), ``state.pt`` (resume state, rewritten
atomically after every epoch), ``log.jsonl`` (one JSON line per epoch: loss, accuracies, per-layer
T and alpha) and ``metrics.json``. A run killed mid-way continues from ``state.pt`` and ends with
the same checkpoint as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from qac.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    model_spec,
    save_checkpoint,
)
from qac.convert import quantizers
from qac.data import AugmentConfig, BatchLoader, load_dataset
from qac.layers import quantizer_summary
from qac.models import build
from qac.runtime import autocast, resolve_device, seed_everything

__all__ = ["TrainConfig", "train", "TrainingDivergedError", "ConfigError", "evaluate_accuracy"]


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (hashed to guard resumption)."""

    arch: str = "resnet20"
    dataset: str = "synthetic-cifar10"
    data_root: str = "data"
    cache_dir: str | None = None
    width: float = 1.0
    activation: dict[str, Any] = field(
        default_factory=lambda: {"name": "qac", "case": 4, "alpha": 8.0, "timesteps": 4}
    )
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    quantizer_lr: float | None = None  # None: same as lr
    quantizer_weight_decay: float | None = None  # None: same as weight_decay (QCFS does this)
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    data_options: dict[str, Any] = field(default_factory=dict)  # e.g. synthetic sizes
    data_seed: int = 0  # seed of synthetic data (independent of the training seed)
    train_limit: int | None = None
    test_limit: int | None = None
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields
    bf16: bool = False
    channels_last: bool = False
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    progress: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option(s) {unknown}: valid options are {sorted(known)}"
            )
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not isinstance(self.activation, dict) or "name" not in self.activation:
            raise ConfigError("activation must be a mapping with a 'name' (qac, qcfs or relu)")
        try:
            AugmentConfig(**self.augment)
        except TypeError as exc:
            raise ConfigError(f"bad augment option: {exc}") from exc

    def fingerprint(self) -> str:
        """Hash of the options that change the result (not device/progress/eval_every)."""
        d = dataclasses.asdict(self)
        for k in ("device", "progress", "eval_every", "cache_dir", "data_root"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    q_ids = {id(p) for _, q in quantizers(model) for p in q.parameters()}
    weights = [p for p in model.parameters() if id(p) not in q_ids]
    quant = [p for p in model.parameters() if id(p) in q_ids]
    groups = [{"params": weights, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if quant:
        groups.append(
            {
                "params": quant,
                "lr": cfg.quantizer_lr if cfg.quantizer_lr is not None else cfg.lr,
                "weight_decay": (
                    cfg.quantizer_weight_decay
                    if cfg.quantizer_weight_decay is not None
                    else cfg.weight_decay
                ),
            }
        )
    return groups


def _lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 0 over the remaining epochs (per-epoch steps)."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    loader: BatchLoader,
    device: torch.device,
    *,
    bf16: bool = False,
    desc: str = "eval",
    progress: bool = False,
) -> float:
    """Top-1 accuracy (%) of ``model`` (an ANN or a :class:`~qac.convert.SpikingNetwork`)."""
    model.eval()
    correct = total = 0
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress):
        with autocast(device, bf16):
            logits = model(images)
        correct += int((logits.argmax(1) == labels).sum())
        total += labels.numel()
    return 100.0 * correct / max(total, 1)


def _loaders(cfg: TrainConfig, device: torch.device):
    common = {
        "root": cfg.data_root,
        "cache_dir": cfg.cache_dir,
        "seed": cfg.data_seed,
        **cfg.data_options,
    }
    train_set = load_dataset(cfg.dataset, "train", limit=cfg.train_limit, **common)
    test_set = load_dataset(cfg.dataset, "test", limit=cfg.test_limit, **common)
    aug = AugmentConfig(**cfg.augment)
    train_loader = BatchLoader(
        train_set,
        cfg.batch_size,
        train=True,
        augment=aug,
        seed=cfg.seed,
        device=device,
        channels_last=cfg.channels_last,
    )
    test_loader = BatchLoader(
        test_set, 256, train=False, device=device, channels_last=cfg.channels_last
    )
    return train_set, train_loader, test_loader


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = True) -> dict[str, Any]:
    """Train a quantized ANN; returns the final metrics (also written to ``metrics.json``)."""
    cfg.validate()
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model = build(cfg.arch, 1, cfg.activation, width=cfg.width)  # fail fast on a bad arch
    train_set, train_loader, test_loader = _loaders(cfg, device)
    num_classes = train_set.num_classes
    spec = model_spec(cfg.arch, num_classes, cfg.activation, cfg.width)
    seed_everything(cfg.seed)
    model = build(cfg.arch, num_classes, cfg.activation, width=cfg.width).to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(_param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    fingerprint = cfg.fingerprint()
    state_path, log_path = out_dir / "state.pt", out_dir / "log.jsonl"

    start_epoch, history = 0, []
    if resume and state_path.exists():
        state = load_checkpoint(state_path, map_location=device)
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"{state_path} was written by a different configuration: delete {out_dir} "
                "or pass --no-resume to start over"
            )
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
        start_epoch, history = state["epoch"] + 1, state["history"]

    test_acc = history[-1].get("test_acc") if history else None
    for epoch in range(start_epoch, cfg.epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * _lr_factor(epoch, cfg)
        train_loader.set_epoch(epoch)
        model.train()
        t0 = time.time()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not cfg.progress,
        )
        for step, (images, labels) in enumerate(bar):
            with autocast(device, cfg.bf16):
                logits = model(images)
                loss = criterion(logits.float(), labels)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: lower the "
                    f"learning rate (lr={cfg.lr}) or the initial alpha/T; nothing was saved for "
                    "this epoch"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * labels.numel()
            correct += int((logits.argmax(1) == labels).sum())
            seen += labels.numel()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": 100.0 * correct / max(seen, 1),
            "seconds": round(time.time() - t0, 2),
        }
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            test_acc = evaluate_accuracy(model, test_loader, device, bf16=cfg.bf16)
            record["test_acc"] = test_acc
        record["layers"] = quantizer_summary(model)
        history.append(record)
        save_checkpoint(
            state_path,
            spec,
            model,
            fingerprint=fingerprint,
            epoch=epoch,
            history=history,
            optimizer=optimizer.state_dict(),
            rng_cpu=torch.get_rng_state(),
            rng_cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))

    metrics = {
        "arch": cfg.arch,
        "dataset": cfg.dataset,
        "activation": cfg.activation,
        "epochs": cfg.epochs,
        "ann_acc": test_acc,
        "train_seconds": sum(r["seconds"] for r in history),
        "layers": quantizer_summary(model),
        "config": dataclasses.asdict(cfg),
        "fingerprint": fingerprint,
    }
    save_checkpoint(out_dir / "model.pt", spec, model, metrics=metrics, config=metrics["config"])
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
