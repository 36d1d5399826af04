"""Evaluation of quantized ANNs and their converted SNNs (accuracy, timesteps, spikes, energy).

Energy estimate (Horowitz, 2014, 45 nm): 4.6 pJ per multiply-accumulate (MAC) and 0.9 pJ per
accumulate (AC). Conventions (see :class:`qac.convert.TimeFolded`): a synaptic layer whose input
is a spike train of one amplitude costs one AC per non-zero input and fan-out connection at every
step; a layer whose input is analog costs MACs - the first layer (direct-encoded image) and every
layer fed by averaged, non-binary inputs (behind an ``average`` alignment, or after average
pooling of spikes); a constant-in-time input is computed once and held as a constant current.
The ANN reference costs one MAC per connection.

Every accuracy comes with a per-image record (``per_image``: test-set size, which images were
classified correctly, a fingerprint of the labels; format in :mod:`qac.uncertainty`) so that
settings and models evaluated on the same test images can be compared image by image.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from qac.align import AlignmentPolicy
from qac.convert import SpikingNetwork, TimeFolded, conversion_error, quantizers, to_snn
from qac.data import BatchLoader
from qac.experiments import RECORD_FORMAT, Model, SNNSetting, record_fields
from qac.io import atomic_write_json
from qac.layers import quantizer_summary
from qac.stats import average_bits, average_timesteps, layer_timesteps, spike_stats, synaptic_ops
from qac.uncertainty import PerImage

__all__ = [
    "E_MAC_PJ",
    "E_AC_PJ",
    "evaluate_ann",
    "evaluate_snn",
    "qcfs_sweep",
    "qcfs_sweep_records",
    "ann_macs",
    "apply_neuron_state",
    "check_neuron_state",
    "write_evaluation",
]

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of ``model``'s parameters (float32 for a model without any)."""
    param = next(model.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


def _per_image(
    model: nn.Module,
    loader: BatchLoader,
    desc: str,
    progress: bool,
    dtype: torch.dtype | None = None,
) -> PerImage:
    """Which test images ``model`` classifies correctly, in loader order."""
    model.eval()
    hits, labels_seen = [], []
    with torch.no_grad():
        for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress):
            images = images.to(dtype or model_dtype(model))
            hits.append((model(images).argmax(1) == labels).cpu().numpy())
            labels_seen.append(labels.cpu().numpy())
    return PerImage.from_predictions(hits, labels_seen)


def _in_dtype(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """The model itself, or a copy in ``dtype`` (float64 makes exactness checks exact)."""
    if dtype is None or next(model.parameters()).dtype == dtype:
        return model
    return copy.deepcopy(model).to(dtype)


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


def ann_macs(model: nn.Module, images: torch.Tensor) -> float:
    """MACs per sample of the ANN (every conv and linear layer, dense)."""
    total = 0.0

    def hook(m, _inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
        else:
            total += out.numel() * m.in_features

    hooks = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model.eval()
        model(images)
    for h in hooks:
        h.remove()
    return total / images.shape[0]


def evaluate_ann(
    model: nn.Module,
    loader: BatchLoader,
    *,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict:
    """Quantized-ANN accuracy, per-layer T and alpha, average T and bit-width."""
    record = _per_image(_in_dtype(model, dtype), loader, "ANN", progress, dtype)
    return {
        "ann_acc": record.accuracy,
        "dtype": str(dtype or next(model.parameters()).dtype).replace("torch.", ""),
        "layer_timesteps": [[n, _finite(T)] for n, T in layer_timesteps(model)],
        "layers": quantizer_summary(model),
        "avg_timesteps": _finite(average_timesteps(model)),
        "avg_bits": _finite(average_bits(model)),
        "num_samples": record.n,
        "per_image": record.to_json(),
    }


def check_neuron_state(model: nn.Module, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Raise ``ValueError`` (one line) unless ``state`` (from :func:`qac.calibrate.calibrate`)
    names only neurons of ``model``'s SNN: checks a calibration file before any evaluation."""
    _require_layers(state, [name for name, _ in quantizers(model)])


def _require_layers(state: dict, layers: Iterable[str]) -> None:
    missing = sorted(set(state) - set(layers))
    if missing:
        raise ValueError(
            f"the calibration names layers this model lacks ({', '.join(missing[:3])}): it was "
            "made for another checkpoint; run 'qac calibrate' on this one"
        )


def apply_neuron_state(snn: SpikingNetwork, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Load calibrated ``{layer: {"v0": ..., "v_th": ...}}`` into the SNN's neurons."""
    neurons = {n: m for n, m in snn.body.named_modules() if hasattr(m, "v0")}
    _require_layers(state, neurons)
    for name, values in state.items():
        neuron = neurons[name]
        with torch.no_grad():
            for key in ("v0", "v_th"):
                if key in values:
                    setattr(neuron, key, values[key].detach().clone().to(neuron.v_th.device))


def evaluate_snn(
    model: nn.Module,
    loader: BatchLoader,
    *,
    policy: str | AlignmentPolicy = "aver+aver",
    v0: Any = "half",
    temporal_scale: int = 1,
    timesteps: int | None = None,
    neuron_state: dict | None = None,
    stats_batches: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict:
    """SNN accuracy and statistics for one conversion setting.

    Spike counts, firing rates, synaptic operations and energy are recorded on the first
    ``stats_batches`` batches; the per-layer conversion error on the first batch.
    """
    model = _in_dtype(model, dtype)
    snn = to_snn(model, policy=policy, v0=v0, temporal_scale=temporal_scale, timesteps=timesteps)
    snn = snn.to(next(model.parameters()).device)
    if neuron_state:
        apply_neuron_state(snn, neuron_state)
    snn.eval()
    hits, labels_seen = [], []
    first_images = None
    snn.set_record(True)
    with torch.no_grad():
        for i, (images, labels) in enumerate(
            tqdm(
                loader,
                desc=f"SNN {AlignmentPolicy.parse(policy).name}",
                leave=False,
                disable=not progress,
            )
        ):
            if i == stats_batches:
                _freeze_stats(snn)
            images = images.to(dtype or model_dtype(model))
            if first_images is None:
                first_images = images
            hits.append((snn(images).argmax(1) == labels).cpu().numpy())
            labels_seen.append(labels.cpu().numpy())
    record = PerImage.from_predictions(hits, labels_seen)
    ops = synaptic_ops(snn)
    spikes = spike_stats(snn)
    snn.set_record(False)
    macs = sum(r["macs_per_sample"] for r in ops)
    acs = sum(r["acs_per_sample"] for r in ops)
    energy_snn = macs * E_MAC_PJ + acs * E_AC_PJ
    energy_ann = ann_macs(model, first_images[:1]) * E_MAC_PJ if first_images is not None else None
    errors = conversion_error(model, snn, first_images) if first_images is not None else {}
    return {
        "snn_acc": record.accuracy,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "policy": AlignmentPolicy.parse(policy).name,
        "v0": v0 if isinstance(v0, str | int | float) else "tensor",
        "calibrated": bool(neuron_state),
        "temporal_scale": temporal_scale,
        "layer_timesteps": snn.layer_timesteps(),
        "avg_timesteps": average_timesteps(snn),
        "avg_bits": average_bits(snn),
        "spikes": spikes,
        "firing_rate": _mean_rate(spikes),
        "synaptic_ops": ops,
        "macs_per_sample": macs,
        "acs_per_sample": acs,
        "energy_pj_per_sample": energy_snn,
        "ann_energy_pj_per_sample": energy_ann,
        "conversion_error": errors,
        "num_samples": record.n,
        "per_image": record.to_json(),
    }


def _mean_rate(spikes: list[dict]) -> float | None:
    rates = [r["firing_rate"] for r in spikes if not math.isnan(r["firing_rate"])]
    return sum(rates) / len(rates) if rates else None


def _freeze_stats(snn: SpikingNetwork) -> None:
    """Stop recording (keeping what was recorded) after the statistics batches."""
    for m in snn.modules():
        if isinstance(m, TimeFolded) or hasattr(m, "spike_count"):
            m.record = False


def qcfs_sweep(
    model: nn.Module, loader: BatchLoader, timesteps: list[int], **options: bool
) -> dict[int, float]:
    """QCFS SNN accuracy for every T in ``timesteps`` (Table 8); ``options`` are those of
    :func:`qcfs_sweep_records`: ``averaged`` (required) and ``progress``."""
    records = qcfs_sweep_records(model, loader, timesteps, **options)
    return {T: rec.accuracy for T, rec in records.items()}


def qcfs_sweep_records(
    model: nn.Module,
    loader: BatchLoader,
    timesteps: list[int],
    *,
    averaged: bool,
    progress: bool = True,
) -> dict[int, PerImage]:
    """Per-image QCFS SNN correctness for every T in ``timesteps`` (Table 8).

    Without averaging (``QCFS``), all layers run the same T and the network is causal, so ONE
    simulation of ``max(timesteps)`` steps gives every T: the running average of the output at
    step t is the T = t result. With averaging at every boundary (``QCFS+aver``) each T needs its
    own run.
    """
    Ts = sorted({int(T) for T in timesteps})
    if not Ts or Ts[0] < 1:
        raise ValueError(f"timesteps must be integers >= 1, got {timesteps}")
    device = next(model.parameters()).device
    if averaged:
        return {
            T: _per_image(
                to_snn(model, policy="qcfs+aver", timesteps=T).to(device),
                loader,
                f"QCFS+aver T={T}",
                progress,
            )
            for T in Ts
        }
    snn = to_snn(model, policy="qcfs", timesteps=Ts[-1]).to(device).eval()
    steps_idx = torch.tensor([T - 1 for T in Ts], device=device)
    denom = torch.arange(1, Ts[-1] + 1, device=device, dtype=torch.float32).view(-1, 1, 1)
    hits: dict[int, list] = {T: [] for T in Ts}
    labels_seen = []
    with torch.no_grad():
        for images, labels in tqdm(loader, desc="QCFS sweep", leave=False, disable=not progress):
            out = snn.forward_steps(images.to(model_dtype(model)))
            if out.shape[0] == 1:  # constant output (cannot happen without averaging)
                out = out.expand(Ts[-1], *out.shape[1:])
            running = out.to(torch.promote_types(out.dtype, torch.float32)).cumsum(0) / denom
            preds = running.index_select(0, steps_idx).argmax(-1)
            for T, p in zip(Ts, preds, strict=True):
                hits[T].append((p == labels).cpu().numpy())
            labels_seen.append(labels.cpu().numpy())
    return {T: PerImage.from_predictions(hits[T], labels_seen) for T in Ts}


def write_evaluation(
    path: str | Path,
    result: dict[str, Any],
    settings: Iterable[SNNSetting] = (),
    model: Model | None = None,
) -> dict[str, Any]:
    """Write the record of one ``qac evaluate`` run as JSON (atomically) and return it.

    ``result`` holds ``ann`` and, when SNN settings were evaluated, ``snn`` (one run per entry
    of ``settings``, in order); each run gets its setting as the on-disk string (``setting``)
    and as fields (``setting_fields``, :meth:`qac.experiments.SNNSetting.to_json`); ``model``
    (the workflow's model id) is recorded as ``model: {dataset, arch, act}``. Infinity (e.g.
    case 3's T) is written as ``null`` with a flag: ``"avg_timesteps": null,
    "avg_timesteps_infinite": true`` (read back with :func:`qac.experiments.record_value`).
    """
    record: dict[str, Any] = {"format": RECORD_FORMAT}
    if model is not None:
        record["model"] = model.to_json()
    record.update(result)
    runs = list(record.get("snn") or [])
    settings = list(settings)
    if len(runs) != len(settings):
        raise ValueError(f"{len(runs)} SNN runs but {len(settings)} settings")
    if runs:
        record["snn"] = [
            {**run, "setting": s.format(), "setting_fields": s.to_json()}
            for run, s in zip(runs, settings, strict=True)
        ]
    record = record_fields(_plain(record))
    atomic_write_json(path, record)
    return record


def _plain(obj: Any) -> Any:
    """Tensors as (nested) lists, tuples as lists, keys as strings."""
    if isinstance(obj, torch.Tensor):
        return _plain(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
