"""Multi-process training with ``torch.distributed`` (one process per GPU, launched by torchrun).

``torchrun --standalone --nproc-per-node N -m qac.cli train ...`` starts N copies of ``qac train``;
each finds its rank in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and
:func:`process_group` joins them (NCCL on CUDA, gloo on the CPU). Without those variables (or with
``WORLD_SIZE=1``) everything here is a no-op, so one code path serves one and many processes.

How N processes give the update of one (see :mod:`qac.train`): every rank draws the same global
batch order and augmentation stream and keeps its contiguous slice of each batch
(:class:`qac.data.BatchLoader` ``rank``/``world_size``); the local loss is weighted by
``world_size * local / global`` images so that DDP's gradient average is the gradient of the global
batch mean; and every BatchNorm layer normalises with the statistics of the global batch
(:func:`sync_batchnorm`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "World",
    "world_from_env",
    "device_for",
    "process_group",
    "all_reduce_sum",
    "all_gather_objects",
    "broadcast_object",
    "barrier",
    "sync_batchnorm",
    "GlobalBatchNorm",
]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size == 1``: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The process that writes files and holds the directory lock."""
        return self.rank == 0


def world_from_env() -> World:
    """The :class:`World` torchrun describes in the environment (single process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def device_for(world: World, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:<local rank>`` on GPUs, else ``device`` unchanged."""
    if not world.distributed or device.type != "cuda":
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"process {world.rank} needs GPU {world.local_rank} but only "
            f"{torch.cuda.device_count()} are visible: ask for as many GPUs as --nproc-per-node"
        )
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join the torchrun process group for the block (NCCL for CUDA, else gloo); yields World.

    A group the caller already initialised is used and left open; one started here is destroyed.
    """
    world = world_from_env()
    if not world.distributed or dist.is_initialized():
        yield world
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        kwargs["device_id"] = torch.device("cuda", world.local_rank)
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, **kwargs)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the processes (in place; ``t`` itself when not distributed)."""
    if _active():
        dist.all_reduce(t)
    return t


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, by rank (``[obj]`` when not distributed)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every process (nothing when not distributed)."""
    if _active():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over the processes (the gradient is summed the same way)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(t.clone())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(grad.clone())


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all processes).

    The CPU/gloo counterpart of :class:`torch.nn.SyncBatchNorm` (which runs on GPUs only): mean and
    biased variance are all-reduced in two passes (exact, no ``E[x^2] - E[x]^2`` cancellation)
    through a differentiable all-reduce, so the gradient is that of the
    global batch too. Running statistics are updated as :class:`torch.nn.BatchNorm2d` does.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = all_reduce_sum(torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype))
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / count
        self._update_running(mean.detach(), var.detach(), float(count))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        factor = self.momentum
        if factor is None:  # cumulative moving average
            factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * count / max(count - 1.0, 1.0)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def _to_global_bn(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm replaced by :class:`GlobalBatchNorm` (same state)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            setattr(new, name, getattr(module, name))  # the same tensors: dtype and device kept
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _to_global_bn(child))
    return module


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with BatchNorm over the global batch when distributed (unchanged otherwise).

    CUDA: :class:`torch.nn.SyncBatchNorm`; CPU: :class:`GlobalBatchNorm`. Parameter and buffer
    names stay the same, so checkpoints load into the plain model.
    """
    if not _active():
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _to_global_bn(model)
