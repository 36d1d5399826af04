"""Quantization-aware training (Algorithm 1, lines 1-21).

Every ReLU is a quantizer and every pooling layer averages (by construction in
:mod:`qac.models`); weights and quantizer parameters are trained together by SGD on the
cross-entropy loss. Defaults follow the QCFS recipe (SGD, momentum 0.9, lr 0.1, weight decay
5e-4 on every parameter, cosine schedule, 300 epochs); every value is configurable and what the
paper leaves open is recorded in ``docs/assumptions.md``. Options: :mod:`qac.trainconfig`; the
epoch loop and resume state: :mod:`qac.trainloop`; what a run reports: :mod:`qac.telemetry`.

Outputs in ``out_dir``: ``model.pt`` (final checkpoint), ``log.jsonl`` (one JSON line per epoch:
loss, accuracies, per-layer T and alpha), ``log.csv`` (one row per epoch: epoch, lr, train_loss,
train_acc, test_acc, mean_T, seconds) and ``metrics.json``, written only when a run completes.
Each configuration trains in its own ``out_dir/runs/<fingerprint>/``: ``state.pt`` (resume state,
rewritten atomically after every epoch and deleted once the run completes), ``log.jsonl`` and
``log.csv`` (rewritten after every epoch), and when complete ``model.pt`` and ``metrics.json``,
which are then copied to ``out_dir``. So a run killed mid-way continues from its own ``state.pt``
and ends with the same checkpoint as an uninterrupted one; a changed option starts a fresh run
beside the old one (whose files stay untouched); going back to a configuration that completed
before copies its result instead of retraining. Disk use: one model per completed configuration,
plus the latest ``state.pt`` (model + optimizer) of each unfinished one; delete
``runs/<fingerprint>/`` folders you no longer need. ``train.lock`` keeps a second trainer out of
the directory. Every epoch also prints one line to stderr (see :mod:`qac.telemetry`).

``init_from`` (a ``model.pt``) starts a fresh run from another model's weights, e.g. a
quantization-aware fine-tune from a float ReLU pretraining (the workflow's ``pretrain``, not the
paper's recipe): checked before anything is written (:func:`qac.trainloop.init_source`,
:func:`qac.trainloop.load_init`), hashed into the fingerprint by the file's sha256, recorded in
``metrics.json``; a resumed run takes its weights from ``state.pt`` instead.

The learning rate follows :func:`_lr_factor` (linear warm-up, then cosine decay to 0, one step per
epoch) through ``torch.optim.lr_scheduler.LambdaLR``, whose state is saved with the resume state.
(``LinearLR`` + ``CosineAnnealingLR`` in a ``SequentialLR`` compute the same schedule
recursively and drift from the closed form by up to 13 ulp over 300 epochs.)

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
import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

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
from qac.data import AugmentConfig, BatchLoader, check_source, load_dataset, num_classes_of
from qac.distributed import (
    World,
    all_gather_objects,
    barrier,
    broadcast_object,
    device_for,
    process_group,
    world_from_env,
)
from qac.layers import quantizer_summary
from qac.models import build
from qac.runtime import resolve_device
from qac.telemetry import Telemetry, check_tensorboard, csv_text, tensorboard_requested
from qac.trainconfig import ConfigError, TrainConfig, init_sha256
from qac.trainloop import (
    TrainingDivergedError,
    build_model,
    data_parallel,
    evaluate_accuracy,
    global_accuracy,
    init_source,
    init_thresholds,
    load_init,
    param_groups,
    restore,
    rng_states,
    train_epoch,
)

__all__ = [
    "TrainConfig",
    "train",
    "run_directory",
    "TrainingDivergedError",
    "ConfigError",
    "evaluate_accuracy",
]

# files of a completed run, copied to the output directory in this order (model.pt, the workflow's
# completion marker, last); log.csv is rebuilt from log.jsonl for runs completed without one
PUBLISHED = ("log.jsonl", "log.csv", "metrics.json", "model.pt")
REQUIRED = ("log.jsonl", "metrics.json", "model.pt")  # a run holding these is complete


def run_directory(out_dir: str | Path, fingerprint: str) -> Path:
    """Where the run of the configuration with ``fingerprint`` keeps its files."""
    return Path(out_dir) / "runs" / fingerprint


def _lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 0 over the remaining epochs (per-epoch steps)."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def _lr_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> LambdaLR:
    """Every group's lr = its base lr x ``_lr_factor(epoch)``; sets epoch 0's at once."""
    # _lr_factor is looked up at every step (the tests replace it to stop a run mid-way)
    return LambdaLR(optimizer, lambda epoch: _lr_factor(epoch, cfg))


def _next_lr(scheduler: LambdaLR) -> None:
    """``scheduler.step()``, without its warning about a step before ``optimizer.step()``: in a
    resumed run the optimizer stepped in the process that saved it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()


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
            _publish(run_dir, out_dir)
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
    return not all((run_dir / name).is_file() for name in REQUIRED)


def _publish(run_dir: Path, out_dir: Path) -> None:
    """Copy the completed run's files to ``out_dir`` (model.pt last)."""
    csv_path = run_dir / "log.csv"
    if not csv_path.is_file():  # completed by a version that wrote no log.csv
        history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        atomic_write_text(csv_path, csv_text(history))
    for name in PUBLISHED:
        atomic_write_bytes(out_dir / name, (run_dir / name).read_bytes())


def _preflight(cfg: TrainConfig) -> None:
    """Fail on a bad architecture/activation, a missing dataset or a missing tensorboard package
    (when asked for) before touching ``out_dir``."""
    if cfg.init_from is None:
        build(cfg.arch, 1, cfg.activation, width=cfg.width)
    check_source(cfg.dataset, root=cfg.data_root)
    if cfg.init_from is not None:  # the file, its architecture and width, every key and shape
        payload = init_source(cfg)
        where = {"root": cfg.data_root, "cache_dir": cfg.cache_dir, **cfg.data_options}
        classes = num_classes_of(cfg.dataset, **where)
        load_init(build(cfg.arch, classes, cfg.activation, width=cfg.width), payload, cfg.init_from)
    if tensorboard_requested(cfg.tensorboard):
        check_tensorboard()


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


def _train_run(cfg: TrainConfig, run_dir: Path) -> None:
    """Train (or finish) the run in ``run_dir``; ends with its model.pt, metrics.json and logs.

    Every process of a torchrun group runs this (after :func:`train` joined the group).
    """
    world = world_from_env()
    device = device_for(world, resolve_device(cfg.device))
    train_set, train_loader, test_loader = _loaders(cfg, device, world)
    spec = model_spec(cfg.arch, train_set.num_classes, cfg.activation, cfg.width)
    model = build_model(cfg, train_set.num_classes, device)
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum)
    scheduler = _lr_schedule(optimizer, cfg)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    state_path = run_dir / "state.pt"
    start_epoch, history = restore(
        state_path, cfg.fingerprint(), model, optimizer, scheduler, world, device
    )
    if start_epoch == 0 and cfg.init_from is not None:  # a resumed run's state holds the weights
        payload = init_source(cfg, device)
        load_init(model, payload, cfg.init_from)
        if cfg.init_threshold_percentile is not None:
            _init_thresholds(cfg, model, payload, train_loader)
    net = data_parallel(model, device, world)
    telemetry = Telemetry(
        run_dir, cfg.epochs, active=world.main, tensorboard=cfg.tensorboard, first_epoch=start_epoch
    )
    with telemetry:
        for epoch in range(start_epoch, cfg.epochs):
            if epoch > 0:
                _next_lr(scheduler)  # the lr of this epoch (epoch 0's was set by _lr_schedule)
            train_loader.set_epoch(epoch)
            record = train_epoch(cfg, epoch, net, train_loader, optimizer, criterion, device)
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                record["test_acc"] = global_accuracy(model, test_loader, cfg, device)
            record["layers"] = quantizer_summary(model)
            history.append(record)
            _save_state(cfg, state_path, spec, model, optimizer, scheduler, history, world, device)
            telemetry.epoch(history)
    if world.main:
        _finish_run(cfg, run_dir, spec, model, history)


def _init_thresholds(cfg: TrainConfig, model: nn.Module, payload: dict, loader: Any) -> None:
    """Thresholds from the float model's activations on the first training batch of epoch 0:
    the whole global batch (every rank's slice, concatenated in rank order: the single-process
    batch), computed on rank 0 and broadcast, so every process starts from the same model and
    the result does not depend on the number of processes."""
    loader.set_epoch(0)
    images, _ = next(iter(loader))
    images = torch.cat([part.to(images.device) for part in all_gather_objects(images.cpu())])
    thresholds = init_thresholds(
        model, payload, images, cfg.init_threshold_percentile, cfg.channels_last
    )
    for (_, q), value in zip(quantizers(model), broadcast_object(thresholds), strict=True):
        q.set_threshold(value)


def _save_state(
    cfg: TrainConfig,
    state_path: Path,
    spec: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    history: list[dict[str, Any]],
    world: World,
    device: torch.device,
) -> None:
    """Write the resume state after the last epoch of ``history`` (rank 0; all ranks call this)."""
    rng_ranks = all_gather_objects(rng_states(device))
    if not world.main:
        return
    save_checkpoint(
        state_path,
        spec,
        model,
        fingerprint=cfg.fingerprint(),
        epoch=history[-1]["epoch"] - 1,
        history=history,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        rng_cpu=rng_ranks[0][0],
        rng_cuda=rng_ranks[0][1],
        rng_ranks=rng_ranks,
    )


def _finish_run(
    cfg: TrainConfig,
    run_dir: Path,
    spec: dict[str, Any],
    model: nn.Module,
    history: list[dict[str, Any]],
) -> None:
    """Write the completed run's model.pt and metrics.json and drop its resume state."""
    tested = [r["test_acc"] for r in history if r.get("test_acc") is not None]
    metrics = {
        "arch": cfg.arch,
        "dataset": cfg.dataset,
        "activation": cfg.activation,
        "epochs": cfg.epochs,
        "ann_acc": tested[-1] if tested else None,
        "train_seconds": sum(r["seconds"] for r in history),
        "layers": quantizer_summary(model),
        "config": dataclasses.asdict(cfg),
        "fingerprint": cfg.fingerprint(),
    }
    if cfg.init_from is not None:
        metrics["init_from"] = {"path": cfg.init_from, "sha256": init_sha256(cfg.init_from)}
    save_checkpoint(run_dir / "model.pt", spec, model, metrics=metrics, config=metrics["config"])
    atomic_write_json(run_dir / "metrics.json", metrics)
    (run_dir / "state.pt").unlink(missing_ok=True)  # complete: model.pt supersedes the state
