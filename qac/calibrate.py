"""Calibration of initial membrane potentials and thresholds (Sec. 4.4, Eqs. 15-17, Alg. 1).

The converted SNN's weights are frozen; only every IF layer's initial membrane potential
``v(0)`` (one per channel by default) and threshold ``v_th`` (one per layer) are trained, by the
surrogate gradient (back-propagation through time of the exact simulation; the paper's Eqs. 16-17
are the one-step form of these gradients), to minimise Eq. 15,

    L = 1/2 * mean( (1/T_L sum_t o_SNN(t) - o_ANN)^2 ),

between the SNN's time-averaged output and the quantized ANN's output on unlabeled calibration
images. The loss on the calibration set is measured before and after; if calibration did not
lower it, the original state is restored and the result says so (``reverted``; this safeguard is
ours, not the paper's: ``revert_if_worse=False`` turns it off).

Optimizer: Algorithm 1 (lines 26-32) writes a plain gradient step ``v <- v - eps * dL/dv`` with
an unspecified step size; ``optimizer="sgd"`` is that rule (mini-batch, no momentum), and
``optimizer="adam"`` (the default) scales each parameter's step by its own gradient history; the
choice and its reason are recorded in ``docs/assumptions.md``.

Images: Sec. 5.4 says calibration "does not require the training dataset" and uses the ANN's
outputs as targets, so no labels are ever read. :func:`calibration_images` draws the unlabeled
images from a configurable source: ``train`` (a class-balanced subset of the training split),
``test`` (test-split images: the SNN is then evaluated on images it was calibrated on) or
``noise`` (standard-normal images in the normalised input space: no dataset at all).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from qac.convert import SpikingNetwork, neurons, to_snn

__all__ = ["CalibrationConfig", "calibrate", "calibration_images", "neuron_state", "SOURCES"]


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SOURCES = ("train", "test", "noise")


def calibration_images(
    source: str, samples: int, load_split: Callable[[str, int], torch.Tensor], seed: int = 0
) -> torch.Tensor:
    """``samples`` unlabeled, normalised calibration images from ``source`` (see module doc).

    ``load_split(split, n)`` returns ``n`` normalised images of a dataset split; ``noise`` asks
    it for one test image only, for the input shape and dtype.
    """
    if source not in SOURCES:
        raise ValueError(f"calibration source must be one of {list(SOURCES)}, got {source!r}")
    if samples < 1:
        raise ValueError(f"calibration needs at least one image, got samples={samples}")
    if source != "noise":
        return load_split(source, samples)
    like = load_split("test", 1)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, *like.shape[1:]), generator=gen, dtype=torch.float64)
    return noise.to(dtype=like.dtype, device=like.device)


@dataclass
class CalibrationConfig:
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    v0_shape: str = "channel"  # "channel" or "layer"
    learn_v0: bool = True
    learn_threshold: bool = True
    policy: str = "aver+aver"
    surrogate: str = "rect"
    surrogate_width: float = 1.0
    min_threshold: float = 1e-3  # thresholds are kept above this (projection after each step)
    optimizer: str = "adam"  # "adam" or "sgd" (Algorithm 1's plain gradient step)
    revert_if_worse: bool = True  # keep the original state when the loss did not drop (ours)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.v0_shape not in ("channel", "layer"):
            raise ValueError(f"v0_shape must be 'channel' or 'layer', got {self.v0_shape!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"calibration optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("calibration needs epochs >= 0, batch_size >= 1 and lr > 0")


def neuron_state(snn: SpikingNetwork) -> dict[str, dict[str, torch.Tensor]]:
    """``{layer: {"v0": tensor, "v_th": tensor}}`` of every IF neuron (detached copies)."""
    return {
        name: {"v0": n.v0.detach().clone().cpu(), "v_th": n.v_th.detach().clone().cpu()}
        for name, n in neurons(snn.body)
    }


def _channels_per_neuron(snn: SpikingNetwork, images: torch.Tensor) -> dict[str, int]:
    shapes: dict[str, int] = {}
    hooks = [
        n.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape[2]))
        for name, n in neurons(snn.body)
    ]
    with torch.no_grad():
        snn(images[:1])
    for h in hooks:
        h.remove()
    return shapes


def _loss(snn: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * (snn(images) - target).pow(2).mean()


def _dataset_loss(snn, batches) -> float:
    with torch.no_grad():
        total = sum(float(_loss(snn, x, y)) * x.shape[0] for x, y in batches)
    return total / sum(x.shape[0] for x, _ in batches)


def calibrate(
    ann: nn.Module, images: torch.Tensor, cfg: CalibrationConfig | None = None
) -> dict[str, Any]:
    """Calibrate ``to_snn(ann, cfg.policy)`` on ``images`` (unlabeled, already normalised).

    Returns ``{"state": {layer: {"v0", "v_th"}}, "trained_state", "loss_before", "loss_after",
    "history", "reverted", "config"}``; ``state`` (the calibrated state, or the original one when
    reverted) is what :func:`qac.evaluate.apply_neuron_state` loads; ``trained_state`` is the
    calibrated state even when it was discarded.
    """
    cfg = cfg or CalibrationConfig()
    device = next(ann.parameters()).device
    ann = ann.eval()
    images = images.to(device)
    snn = to_snn(
        ann, policy=cfg.policy, surrogate=cfg.surrogate, surrogate_width=cfg.surrogate_width
    ).to(device)
    for p in snn.parameters():
        p.requires_grad_(False)
    if cfg.v0_shape == "channel":
        for name, channels in _channels_per_neuron(snn, images).items():
            snn.body.get_submodule(name).expand_v0(channels)
    params = []
    for _, n in neurons(snn.body):
        n.set_learnable(True)
        n.v0.requires_grad_(cfg.learn_v0)
        n.v_th.requires_grad_(cfg.learn_threshold)
        params += [p for p in (n.v0, n.v_th) if p.requires_grad]
    with torch.no_grad():
        targets = torch.cat([ann(x) for x in images.split(256)])
    batches = list(zip(images.split(cfg.batch_size), targets.split(cfg.batch_size), strict=True))

    initial = copy.deepcopy(neuron_state(snn))
    loss_before = _dataset_loss(snn, batches)
    history = [loss_before]
    if params and cfg.epochs > 0:
        optimizer = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr)
        gen = torch.Generator().manual_seed(0)
        for _ in tqdm(range(cfg.epochs), desc="calibrate", leave=False, disable=not cfg.progress):
            running, seen = 0.0, 0
            for i in torch.randperm(len(batches), generator=gen).tolist():
                x, y = batches[i]
                loss = _loss(snn, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for _, n in neurons(snn.body):
                        n.v_th.clamp_(min=cfg.min_threshold)
                running += loss.item() * x.shape[0]
                seen += x.shape[0]
            history.append(running / seen)
    loss_after = _dataset_loss(snn, batches)
    reverted = cfg.revert_if_worse and not loss_after < loss_before
    trained = neuron_state(snn)
    return {
        "state": initial if reverted else trained,
        "trained_state": trained,
        "loss_before": loss_before,
        "loss_after": loss_after,
        "history": history,
        "reverted": reverted,
        "num_images": int(images.shape[0]),
        "config": vars(cfg).copy(),
    }
