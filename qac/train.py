"""Quantization-aware training (Algorithm 1, lines 1-21).

Every ReLU is a quantizer and every pooling layer averages (by construction in
:mod:`qac.models`); weights and quantizer parameters are trained together by SGD on the
cross-entropy loss. Defaults follow the QCFS recipe (SGD, momentum 0.9, lr 0.1, weight decay
5e-4 on every parameter, cosine schedule, 300 epochs); every value is configurable and what the
paper leaves open is recorded in ``docs/assumptions.md``.

Outputs in ``out_dir``: ``model.pt`` (final checkpoint), ``log.jsonl`` (one JSON line per epoch:
loss, accuracies, per-layer T and alpha) and ``metrics.json``, written only when a run completes.
Each configuration trains in its own ``out_dir/runs/<fingerprint>/``: ``state.pt`` (resume state,
rewritten atomically after every epoch and deleted once the run completes), ``log.jsonl``, and when
complete ``model.pt`` and ``metrics.json``, which are then copied to ``out_dir``. So a run killed
mid-way continues from its own ``state.pt`` and ends with the same checkpoint as an uninterrupted
one; a changed option starts a fresh run beside the old one (whose files stay untouched); going
back to a configuration that completed before copies its result instead of retraining. Disk use:
one model per completed configuration, plus the latest ``state.pt`` (model + optimizer) of each
unfinished one; delete ``runs/<fingerprint>/`` folders you no longer need. ``train.lock`` keeps a
second trainer out of the directory.

Several processes (``torchrun --nproc-per-node N -m qac.cli train ...``, one per GPU) train one
model with DistributedDataParallel and give the update of one process with the same global
``batch_size``: each takes its slice of every global batch (same order and augmentation), the
loss is weighted by its share of the batch, and BatchNorm uses global-batch statistics (see
:mod:`qac.distributed`). Rank 0 alone holds the lock and writes files; a run can be resumed with
another number of processes. Dropout (VGG-16 on ImageNet) draws per-process masks, so only there
the result is not the single-process one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from qac.checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    directory_lock,
    load_checkpoint,
    model_spec,
    save_checkpoint,
)
from qac.convert import quantizers
from qac.data import AugmentConfig, BatchLoader, check_source, load_dataset
from qac.distributed import (
    World,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_object,
    device_for,
    process_group,
    sync_batchnorm,
    world_from_env,
)
from qac.layers import quantizer_summary
from qac.models import build
from qac.runtime import autocast, resolve_device, seed_everything

__all__ = [
    "TrainConfig",
    "train",
    "run_directory",
    "TrainingDivergedError",
    "ConfigError",
    "evaluate_accuracy",
]

# files of a completed run, copied to the output directory in this order (model.pt, the workflow's
# completion marker, last)
PUBLISHED = ("log.jsonl", "metrics.json", "model.pt")


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
    float64: bool = False  # train in double precision (CPU-independent weights; smoke scale)
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    progress: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        cfg = cls(**_typed_fields(cls, values, "training"))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Convert every option to its declared type (``"5e-4"`` -> 0.0005) and check ranges."""
        for name, value in _typed_fields(type(self), dataclasses.asdict(self), "training").items():
            setattr(self, name, value)
        self.augment = _typed_fields(AugmentConfig, self.augment, "augment")
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if "name" not in self.activation:
            raise ConfigError("activation must be a mapping with a 'name' (qac, qcfs or relu)")
        if self.float64 and self.bf16:
            raise ConfigError("float64 and bf16 exclude each other: set one of them to false")

    def fingerprint(self) -> str:
        """Hash of the options that change the result (not device/progress/eval_every)."""
        d = dataclasses.asdict(self)
        for k in ("device", "progress", "eval_every", "cache_dir", "data_root"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


_KINDS = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _typed_fields(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` (options of dataclass ``cls``) converted to the field types; ConfigError if not.

    ``what`` names the options in messages; nested options are called ``augment.flip``.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{what} options must be a mapping, not {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        valid = sorted(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"unknown {what} option(s) {unknown}: valid options are {valid}")
    prefix = "" if what == "training" else f"{what}."
    return {k: _typed(prefix + k, v, hints[k]) for k, v in values.items()}


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` (``X | None``, bool, int, float, str or dict) or ConfigError."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    kind = typing.get_origin(hint) or hint
    converted = _convert(kind, value)
    if converted is None:
        raise ConfigError(f"option {name}={value!r} is not {_KINDS.get(kind, 'a mapping')}")
    return converted


def _convert(kind: type, value: Any) -> Any:
    """``value`` converted to ``kind``, or None where it does not fit."""
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value if isinstance(value, bool) else None
    if kind in (int, float):
        number = _number(value)
        if kind is float:
            return number
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return int(number) if number is not None and number.is_integer() else None
    return value if isinstance(value, kind) else None


def _number(value: Any) -> float | None:
    """A finite float from a number or a string in any float notation ("5e-4", ".5")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def run_directory(out_dir: str | Path, fingerprint: str) -> Path:
    """Where the run of the configuration with ``fingerprint`` keeps its files."""
    return Path(out_dir) / "runs" / fingerprint


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
    correct, total = _count_correct(model, loader, device, bf16=bf16, desc=desc, progress=progress)
    return 100.0 * correct / max(total, 1)


@torch.no_grad()
def _count_correct(
    model: nn.Module,
    loader: BatchLoader,
    device: torch.device,
    *,
    bf16: bool = False,
    desc: str = "eval",
    progress: bool = False,
) -> tuple[int, int]:
    """(correct top-1 predictions, images) of ``model`` over ``loader``."""
    model.eval()
    correct = total = 0
    dtype = _param_dtype(model)
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images = images.to(dtype)
        with autocast(device, bf16):
            logits = model(images)
        correct += int((logits.argmax(1) == labels).sum())
        total += labels.numel()
    return correct, total


def _global_accuracy(model: nn.Module, loader: BatchLoader, cfg: TrainConfig, device) -> float:
    """Top-1 accuracy (%) over the shards of ``loader`` of all processes."""
    counts = _count_correct(model, loader, device, bf16=cfg.bf16)
    correct, total = all_reduce_sum(torch.tensor(counts, dtype=torch.float64, device=device))
    return 100.0 * float(correct) / max(float(total), 1.0)


def _param_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s parameters (inputs are cast to it)."""
    param = next(model.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


def _loaders(cfg: TrainConfig, device: torch.device, world: World):
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
        rank=world.rank,
        world_size=world.size,
    )
    test_loader = BatchLoader(
        test_set,
        256,
        train=False,
        device=device,
        channels_last=cfg.channels_last,
        rank=world.rank,
        world_size=world.size,
    )
    _check_shards(len(train_set), cfg.batch_size, world)
    return train_set, train_loader, test_loader


def _check_shards(n: int, batch_size: int, world: World) -> None:
    """Every process must get at least one image of every training batch."""
    smallest = min(batch_size, n % batch_size or batch_size)
    if smallest < world.size:
        raise ConfigError(
            f"{world.size} processes but a training batch of {smallest} image(s) ({n} images, "
            f"batch_size={batch_size}): use fewer processes or a train_limit/batch_size that "
            "leaves at least one image per process"
        )


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = True) -> dict[str, Any]:
    """Train a quantized ANN; returns the final metrics (also written to ``metrics.json``).

    ``resume=False`` discards this configuration's earlier run (finished or not) and starts over.
    Under torchrun (``WORLD_SIZE`` > 1) every process calls this; rank 0 locks and writes.
    """
    cfg.validate()
    _preflight(cfg)
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    run_dir = run_directory(out_dir, cfg.fingerprint())
    with process_group(device) as world, _main_lock(world, out_dir):
        if broadcast_object(world.main and _prepare(out_dir, run_dir, resume)):
            _train_run(cfg, run_dir)
        if world.main:
            for name in PUBLISHED:
                atomic_write_bytes(out_dir / name, (run_dir / name).read_bytes())
        barrier()
        return json.loads((out_dir / "metrics.json").read_text())


def _main_lock(world: World, out_dir: Path) -> contextlib.AbstractContextManager:
    """The directory lock on rank 0 (the other ranks never touch files but their own reads)."""
    return directory_lock(out_dir) if world.main else contextlib.nullcontext()


def _prepare(out_dir: Path, run_dir: Path, resume: bool) -> bool:
    """Tidy ``out_dir`` for this run; whether the run still has to train (rank 0 only)."""
    _adopt_legacy_state(out_dir)
    if not (out_dir / "model.pt").exists():  # deleted (Snakemake does): the rest is stale
        for name in PUBLISHED:
            (out_dir / name).unlink(missing_ok=True)
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    return not all((run_dir / name).is_file() for name in PUBLISHED)


def _preflight(cfg: TrainConfig) -> None:
    """Fail on a bad architecture/activation or a missing dataset before touching ``out_dir``."""
    build(cfg.arch, 1, cfg.activation, width=cfg.width)
    check_source(cfg.dataset, root=cfg.data_root)


def _adopt_legacy_state(out_dir: Path) -> None:
    """Move a ``state.pt`` left in ``out_dir`` by an older version into its run directory."""
    legacy = out_dir / "state.pt"
    if not legacy.is_file():
        return
    target = run_directory(out_dir, load_checkpoint(legacy).get("fingerprint", "unknown"))
    target.mkdir(parents=True, exist_ok=True)
    if (target / "state.pt").exists():
        legacy.unlink()
    else:
        os.replace(legacy, target / "state.pt")


def _restore(
    state_path: Path,
    fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    world: World,
) -> tuple[int, list[dict[str, Any]]]:
    """Load the resume state (if any) into ``model``/``optimizer``/RNG: (next epoch, history).

    Each process gets back its own RNG state when the run continues with as many processes as it
    was saved with, else rank 0's.
    """
    if not state_path.exists():
        return 0, []
    state = load_checkpoint(state_path, map_location=device)
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{state_path} was written by a different configuration: delete {state_path.parent} "
            "or pass --no-resume to start over"
        )
    model.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    ranks = state.get("rng_ranks") or []
    rng_cpu, rng_cuda = (
        ranks[world.rank] if len(ranks) == world.size else (state["rng_cpu"], state["rng_cuda"])
    )
    torch.set_rng_state(rng_cpu.cpu())
    if device.type == "cuda" and rng_cuda is not None:
        torch.cuda.set_rng_state(rng_cuda.cpu(), device)
    return state["epoch"] + 1, state["history"]


def _rng_states(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's (CPU, CUDA) random generator states."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _train_epoch(
    cfg: TrainConfig,
    epoch: int,
    net: nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    device: torch.device,
) -> dict[str, Any]:
    """One pass over ``loader``; the epoch's log record (loss, accuracy, lr, seconds).

    ``net`` may be DistributedDataParallel: the local mean loss is weighted by
    ``processes * local images / global images``, so the averaged gradient is that of the global
    batch mean; loss and accuracy are summed over the processes.
    """
    net.train()
    t0 = time.time()
    processes = loader.world_size
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images (global)
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not cfg.progress or loader.rank > 0,
    )
    for step, (images, labels) in enumerate(bar):
        images = images.to(_param_dtype(net))
        with autocast(device, cfg.bf16):
            logits = net(images)
            loss = criterion(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)
        n = labels.numel()
        batch = all_reduce_sum(
            torch.stack(
                [
                    loss.detach().to(torch.float64) * n,
                    (logits.argmax(1) == labels).sum().to(torch.float64),
                    torch.tensor(float(n), dtype=torch.float64, device=loss.device),
                ]
            )
        ).cpu()
        if not math.isfinite(batch[0]):
            raise TrainingDivergedError(
                f"loss became {float(batch[0] / batch[2])} at epoch {epoch + 1}, step "
                f"{step + 1}: lower the learning rate (lr={cfg.lr}) or the initial alpha/T; "
                "nothing was saved for this epoch"
            )
        if processes > 1:
            loss = loss * (processes * n / float(batch[2]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals += batch
        bar.set_postfix(
            loss=f"{totals[0] / totals[2]:.3f}", acc=f"{100 * totals[1] / totals[2]:.1f}"
        )
    loss_sum, correct, seen = totals.tolist()
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": 100.0 * correct / max(seen, 1),
        "seconds": round(time.time() - t0, 2),
    }


def _build_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The freshly initialised model (same weights on every process), on ``device``."""
    seed_everything(cfg.seed)
    model = build(cfg.arch, num_classes, cfg.activation, width=cfg.width).to(device)
    if cfg.float64:
        model = model.to(torch.float64)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return sync_batchnorm(model, device)


def _data_parallel(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several processes."""
    if not world.distributed:
        return model
    if world.rank > 0:  # its own dropout masks; rank 0 keeps the single-process stream
        torch.manual_seed(torch.initial_seed() + world.rank)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _train_run(cfg: TrainConfig, run_dir: Path) -> None:
    """Train (or finish) the run in ``run_dir``; ends with its model.pt, metrics.json, log.jsonl.

    Every process of a torchrun group runs this (after :func:`train` joined the group).
    """
    world = world_from_env()
    device = device_for(world, resolve_device(cfg.device))
    train_set, train_loader, test_loader = _loaders(cfg, device, world)
    num_classes = train_set.num_classes
    spec = model_spec(cfg.arch, num_classes, cfg.activation, cfg.width)
    model = _build_model(cfg, num_classes, device)
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.SGD(_param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    fingerprint = cfg.fingerprint()
    state_path, log_path = run_dir / "state.pt", run_dir / "log.jsonl"

    start_epoch, history = _restore(state_path, fingerprint, model, optimizer, device, world)
    net = _data_parallel(model, device, world)
    test_acc = history[-1].get("test_acc") if history else None
    for epoch in range(start_epoch, cfg.epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * _lr_factor(epoch, cfg)
        train_loader.set_epoch(epoch)
        record = _train_epoch(cfg, epoch, net, train_loader, optimizer, criterion, device)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            test_acc = _global_accuracy(model, test_loader, cfg, device)
            record["test_acc"] = test_acc
        record["layers"] = quantizer_summary(model)
        history.append(record)
        rng_ranks = all_gather_objects(_rng_states(device))
        if world.main:
            save_checkpoint(
                state_path,
                spec,
                model,
                fingerprint=fingerprint,
                epoch=epoch,
                history=history,
                optimizer=optimizer.state_dict(),
                rng_cpu=rng_ranks[0][0],
                rng_cuda=rng_ranks[0][1],
                rng_ranks=rng_ranks,
            )
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in history))
    if world.main:
        _finish_run(cfg, run_dir, spec, model, history, test_acc)


def _finish_run(
    cfg: TrainConfig,
    run_dir: Path,
    spec: dict[str, Any],
    model: nn.Module,
    history: list[dict[str, Any]],
    test_acc: float | None,
) -> None:
    """Write the completed run's model.pt and metrics.json and drop its resume state."""
    fingerprint = cfg.fingerprint()
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
    save_checkpoint(run_dir / "model.pt", spec, model, metrics=metrics, config=metrics["config"])
    atomic_write_json(run_dir / "metrics.json", metrics)
    (run_dir / "state.pt").unlink(missing_ok=True)  # complete: model.pt supersedes the state
