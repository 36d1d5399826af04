"""The pieces of one training run: model, optimizer groups, epochs, evaluation, resume state.

:func:`qac.train.train` puts them together; everything here runs on every process of a torchrun
group (see :mod:`qac.distributed`), and nothing here writes files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from qac.checkpoint import CheckpointError, load_checkpoint
from qac.convert import quantizers
from qac.data import BatchLoader
from qac.distributed import World, all_reduce_sum, sync_batchnorm
from qac.models import build
from qac.runtime import autocast, seed_everything
from qac.trainconfig import ConfigError, TrainConfig, check_init_from

__all__ = [
    "TrainingDivergedError",
    "evaluate_accuracy",
    "count_correct",
    "global_accuracy",
    "param_dtype",
    "param_groups",
    "build_model",
    "init_source",
    "load_init",
    "init_thresholds",
    "data_parallel",
    "train_epoch",
    "restore",
    "rng_states",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
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


def evaluate_accuracy(
    model: nn.Module, loader: BatchLoader, device: torch.device, **options: Any
) -> float:
    """Top-1 accuracy (%) of ``model`` (an ANN or a :class:`~qac.convert.SpikingNetwork`);
    ``options`` as :func:`count_correct` (``bf16``, ``desc``, ``progress``)."""
    correct, total = count_correct(model, loader, device, **options)
    return 100.0 * correct / max(total, 1)


@torch.no_grad()
def count_correct(
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
    dtype = param_dtype(model)
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images = images.to(dtype)
        with autocast(device, bf16):
            logits = model(images)
        correct += int((logits.argmax(1) == labels).sum())
        total += labels.numel()
    return correct, total


def global_accuracy(model: nn.Module, loader: BatchLoader, cfg: TrainConfig, device) -> float:
    """Top-1 accuracy (%) over the shards of ``loader`` of all processes."""
    counts = count_correct(model, loader, device, bf16=cfg.bf16)
    correct, total = all_reduce_sum(torch.tensor(counts, dtype=torch.float64, device=device))
    return 100.0 * float(correct) / max(float(total), 1.0)


def param_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s parameters (inputs are cast to it)."""
    param = next(model.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


def restore(
    state_path: Path,
    fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LRScheduler,
    world: World,
    device: torch.device,
) -> tuple[int, list[dict[str, Any]]]:
    """Load the resume state (if any) into model/optimizer/scheduler/RNG: (next epoch, history).

    The scheduler is left at the last trained epoch: the next ``scheduler.step()`` sets the
    learning rate of the epoch returned.
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
    scheduler.load_state_dict(state.get("scheduler") or _schedule_at(scheduler, state["epoch"]))
    _restore_rng(state, world, device)
    return state["epoch"] + 1, state["history"]


def _schedule_at(scheduler: LRScheduler, epoch: int) -> dict[str, Any]:
    """The state of ``scheduler`` after ``epoch`` (for resume states saved without one)."""
    return {**scheduler.state_dict(), "last_epoch": epoch, "_step_count": epoch + 1}


def _restore_rng(state: dict[str, Any], world: World, device: torch.device) -> None:
    """This process's saved RNG state if the run had as many processes, else rank 0's."""
    ranks = state.get("rng_ranks") or []
    rng_cpu, rng_cuda = (
        ranks[world.rank] if len(ranks) == world.size else (state["rng_cpu"], state["rng_cuda"])
    )
    torch.set_rng_state(rng_cpu.cpu())
    if device.type == "cuda" and rng_cuda is not None:
        torch.cuda.set_rng_state(rng_cuda.cpu(), device)


def rng_states(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's (CPU, CUDA) random generator states."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def train_epoch(
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
        images = images.to(param_dtype(net))
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


def build_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The freshly initialised model (same weights on every process), on ``device``."""
    seed_everything(cfg.seed)
    model = build(cfg.arch, num_classes, cfg.activation, width=cfg.width).to(device)
    if cfg.float64:
        model = model.to(torch.float64)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return sync_batchnorm(model, device)


def init_source(cfg: TrainConfig, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint ``cfg.init_from`` (a payload of :func:`qac.checkpoint.load_checkpoint`),
    checked to hold a model of the run's architecture and width; ConfigError otherwise."""
    path = check_init_from(cfg.init_from)
    try:
        payload = load_checkpoint(path, map_location=map_location)
    except CheckpointError as exc:
        raise ConfigError(f"init_from: {exc}") from None
    spec = payload.get("spec") or {}
    arch, width = spec.get("arch"), float(spec.get("width", 1.0))
    if arch != cfg.arch or width != cfg.width or "state_dict" not in payload:
        raise ConfigError(
            f"init_from {path} holds a {arch} of width {width}, but this run trains a "
            f"{cfg.arch} of width {cfg.width}: point init_from to a model of the same "
            "architecture and width"
        )
    act = (spec.get("activation") or {}).get("name")
    if cfg.init_threshold_percentile is not None and act != "relu":
        raise ConfigError(
            f"init_threshold_percentile reads the float model's ReLU outputs, but init_from "
            f"{path} holds a {act} model: point init_from to a ReLU model or unset the percentile"
        )
    return payload


def load_init(model: nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """Copy the weights of checkpoint ``payload`` (read from ``path``) into ``model``.

    Every parameter and buffer must match by name and shape, except the quantizer parameters
    the source lacks (a float ReLU source has no ``t``/``alpha``/``theta``...): those keep their
    initial values. ConfigError names the first key that does not fit.
    """
    source = payload["state_dict"]
    target = model.state_dict()
    quantizer_keys = tuple(f"{name}." for name, _ in quantizers(model))
    fix = "point init_from to a model of the same architecture, width and dataset"
    for key, value in target.items():
        if key not in source:
            if key.startswith(quantizer_keys):
                continue
            raise ConfigError(
                f"init_from {path} lacks {key} (shape {tuple(value.shape)} in the model): {fix}"
            )
        if source[key].shape != value.shape:
            raise ConfigError(
                f"init_from {path}: {key} has shape {tuple(source[key].shape)} there but "
                f"{tuple(value.shape)} in the model: {fix}"
            )
    for key, value in source.items():
        if key not in target:
            raise ConfigError(
                f"init_from {path} holds {key} (shape {tuple(value.shape)}), which the model "
                f"lacks: {fix}"
            )
    model.load_state_dict(source, strict=False)


@torch.no_grad()
def init_thresholds(
    model: nn.Module,
    payload: dict[str, Any],
    images: torch.Tensor,
    percentile: float,
    channels_last: bool = False,
) -> list[float]:
    """Set every quantizer's threshold (alpha; QCFS theta) of ``model`` to the ``percentile`` of
    the positive outputs of the ReLU at the same place in the float model of checkpoint
    ``payload`` (same architecture, ReLU activations) on ``images``; returns the thresholds.

    A quantization-aware fine-tune from a float model then starts from a quantized network close
    to the float one (the fixed initial alpha of from-scratch training can be far above the float
    model's activations, where most of them round to 0). A layer without positive outputs keeps
    its threshold."""
    spec = payload.get("spec") or {}
    float_model = build(
        spec["arch"], spec["num_classes"], {"name": "relu"}, width=float(spec.get("width", 1.0))
    )
    float_model.load_state_dict(payload["state_dict"])
    float_model = float_model.to(device=images.device, dtype=images.dtype).eval()
    if channels_last:
        float_model = float_model.to(memory_format=torch.channels_last)
    found: dict[str, float] = {}
    hooks = []
    for name, _ in quantizers(model):

        def record(module: nn.Module, inputs: Any, out: torch.Tensor, name: str = name) -> None:
            values = out.detach().double().flatten()
            values = values[values > 0]
            if values.numel() > 2**24:  # torch.quantile's size limit: numpy's, exact too
                found[name] = float(np.quantile(values.cpu().numpy(), percentile / 100.0))
            elif values.numel():
                found[name] = float(torch.quantile(values, percentile / 100.0))

        hooks.append(float_model.get_submodule(name).register_forward_hook(record))
    try:
        float_model(images)
    finally:
        for hook in hooks:
            hook.remove()
    thresholds = []
    for name, q in quantizers(model):
        if name in found:
            q.set_threshold(found[name])
        thresholds.append(q.threshold)
    return thresholds


def data_parallel(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several processes."""
    if not world.distributed:
        return model
    if world.rank > 0:  # its own dropout masks; rank 0 keeps the single-process stream
        torch.manual_seed(torch.initial_seed() + world.rank)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
