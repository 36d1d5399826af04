"""The measurements of the performance issue and the augmentation cost; each returns result rows.

1. ``snn_inference``: our simulator against SpikingJelly on the same converted network.
2. ``dense_bound``: our simulator against sum_l T_l * t_l (layer l's ANN time, T_l its steps).
3. ``qat_overhead``: one training step with QAC / QCFS activations against ReLU.
4. ``sweep``: the one-pass QCFS T sweep against one run per T.
5. ``workflow``: ``snakemake -n all`` at paper scale and a no-op rerun at smoke scale.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmarks.models import MIXED_PROFILES, benchmark_ann, benchmark_images
from benchmarks.spikingjelly_net import SpikingJellyRunner, spikingjelly_available, spikingjelly_snn
from benchmarks.timing import interleaved, synchronize
from qac import kernels
from qac.align import TimeAlign
from qac.convert import SpikingNetwork, TimeFolded, neurons, to_snn
from qac.evaluate import qcfs_sweep
from qac.models import build

__all__ = ["Settings", "snn_inference", "dense_bound", "qat_overhead", "sweep", "workflow"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    device: torch.device
    batch: int = 128
    rounds: int = 5
    warmup: int = 1


def _img_s(batch: int, seconds: float) -> float:
    return batch / seconds


# -- 1. SNN inference against SpikingJelly --------------------------------------------------
def snn_inference(arch: str, T: int, s: Settings) -> list[dict]:
    """Same converted network (uniform T, soft reset, v0 = v_th/2), ours vs SpikingJelly."""
    images_cpu = benchmark_images(s.batch)
    ann = benchmark_ann(arch, images_cpu, activation="qcfs", timesteps=T).to(s.device)
    images = images_cpu.to(s.device)
    rows = []
    settings = (("none", "qcfs", False, 1.0), ("average", "qcfs+aver", True, 2.0))
    for equal, policy, average, target in settings:
        ours = to_snn(ann, policy, timesteps=T).to(s.device).eval()
        candidates = {"ours": _no_grad(ours, images)}
        if spikingjelly_available():
            for mode in ("m",) if average else ("s", "m"):
                net = spikingjelly_snn(ann, step_mode=mode, average=average).to(s.device)
                candidates[f"spikingjelly[{mode}]"] = _no_grad(
                    SpikingJellyRunner(net, T, mode), images
                )
        reference = candidates["ours"]()
        agreement = {
            name: float((fn().argmax(1) == reference.argmax(1)).float().mean())
            for name, fn in candidates.items()
            if name != "ours"
        }
        timing = interleaved(candidates, rounds=s.rounds, warmup=s.warmup, device=s.device)
        ours_t = timing["ours"]["median_s"]
        row = {
            "arch": arch,
            "T": T,
            "equal": equal,
            "policy": policy,
            "batch": s.batch,
            "ours_img_s": _img_s(s.batch, ours_t),
            "target_ratio": target,
        }
        sj = {k: v["median_s"] for k, v in timing.items() if k != "ours"}
        if sj:
            best = min(sj, key=sj.get)
            row.update(
                {
                    "spikingjelly_mode": best,
                    "spikingjelly_img_s": _img_s(s.batch, sj[best]),
                    "ratio": sj[best] / ours_t,
                    "prediction_agreement": agreement[best],
                    "all_spikingjelly_img_s": {k: _img_s(s.batch, v) for k, v in sj.items()},
                }
            )
            row["met"] = row["ratio"] >= target and agreement[best] == 1.0
        else:
            row.update({"ratio": None, "met": None, "note": "spikingjelly not installed"})
        rows.append(row)
    return rows


def _no_grad(fn, images: torch.Tensor):  # type: ignore[no-untyped-def]
    def call() -> torch.Tensor:
        with torch.no_grad():
            return fn(images)

    return call


# -- 2. dense bound -------------------------------------------------------------------------
def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (n, m)
        for n, m in model.named_modules()
        if n and not list(m.children()) and not isinstance(m, TimeAlign)
    ]


class LayerTimer:
    """Times every leaf layer of a model on each forward pass (hooks; median per layer)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.samples: dict[str, list[float]] = {}
        self._starts: dict[str, float] = {}
        self._device = device
        self._handles = []
        for name, m in _leaves(model):
            self._handles.append(m.register_forward_pre_hook(self._pre(name)))
            self._handles.append(m.register_forward_hook(self._post(name)))

    def _pre(self, name: str):  # type: ignore[no-untyped-def]
        def hook(_m, _i) -> None:
            synchronize(self._device)
            self._starts[name] = time.perf_counter()

        return hook

    def _post(self, name: str):  # type: ignore[no-untyped-def]
        def hook(_m, _i, _o) -> None:
            synchronize(self._device)
            elapsed = time.perf_counter() - self._starts[name]
            self.samples.setdefault(name, []).append(elapsed)

        return hook

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.samples.items()}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def nominal_steps(snn: SpikingNetwork, image: torch.Tensor) -> dict[str, int]:
    """How many steps each layer runs in a dense simulation (the reference path)."""
    steps: dict[str, int] = {}
    handles = []
    for name, m in snn.body.named_modules():
        if isinstance(m, TimeFolded):
            handles.append(
                m.register_forward_hook(
                    lambda mod, i, o, n=name: steps.__setitem__(n, i[0].shape[0])
                )
            )
    for name, n in neurons(snn.body):
        steps[name] = n.timesteps
    snn.set_reference(True)
    try:
        snn(image[:1])
    finally:
        snn.set_reference(False)
        for h in handles:
            h.remove()
    return steps


def dense_bound(arch: str, profile: str, policy: str, s: Settings) -> list[dict]:
    """Efficiency = sum_l T_l * t_l / t_SNN for a uniform (T=4) or mixed (Fig. 1-like) profile."""
    timesteps: int | list[int] = 4 if profile == "uniform" else MIXED_PROFILES[arch]
    images_cpu = benchmark_images(s.batch)
    ann = benchmark_ann(arch, images_cpu, activation="qac", timesteps=timesteps).to(s.device)
    images = images_cpu.to(s.device)
    snn = to_snn(ann, policy).to(s.device).eval()
    steps = nominal_steps(snn, images)
    run_ann, run_snn = _no_grad(ann.eval(), images), _no_grad(snn, images)
    for _ in range(s.warmup):
        run_ann()
        run_snn()
    # ANN layer timings and SNN runs alternate, so both see the same machine state
    timer, snn_times = LayerTimer(ann, s.device), []
    try:
        for _ in range(max(s.rounds, 7)):
            run_ann()
            synchronize(s.device)
            start = time.perf_counter()
            run_snn()
            synchronize(s.device)
            snn_times.append(time.perf_counter() - start)
    finally:
        timer.remove()
    t_layer = timer.medians()
    missing = sorted(set(t_layer) - set(steps))
    if missing:
        raise RuntimeError(f"layers without a step count in the SNN: {missing[:3]}")
    bound = sum(steps[name] * t for name, t in t_layer.items())
    t_snn = statistics.median(snn_times)
    Ts = [n.timesteps for _, n in neurons(snn.body)]
    return [
        {
            "arch": arch,
            "profile": profile,
            "policy": policy,
            "mean_T": sum(Ts) / len(Ts),
            "batch": s.batch,
            "ann_layers_s": sum(t_layer.values()),
            "dense_bound_s": bound,
            "snn_s": t_snn,
            "snn_img_s": _img_s(s.batch, t_snn),
            "bound_img_s": _img_s(s.batch, bound),
            "efficiency": bound / t_snn,
            "target": 0.8,
            "met": bound / t_snn >= 0.8,
        }
    ]


# -- 3. QAT overhead -------------------------------------------------------------------------
def _train_step(arch: str, activation: dict, backend: str, dtype: str, s: Settings):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build(arch, 10, **activation).to(s.device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(s.batch, 3, 32, 32, generator=g).to(s.device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (s.batch,), generator=g).to(s.device)

    def step() -> None:
        kernels.set_backend(backend)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def qat_overhead(arch: str, dtype: str, s: Settings) -> list[dict]:
    """Training step time with QAC (case 4) and QCFS activations relative to ReLU."""
    qac = {"activation": "qac", "case": 4, "alpha": 2.0, "timesteps": 4}
    qcfs = {"activation": "qcfs", "levels": 8, "theta": 2.0}
    candidates = {
        "relu": _train_step(arch, {"activation": "relu"}, "auto", dtype, s),
        "qac": _train_step(arch, qac, "auto", dtype, s),
        "qcfs": _train_step(arch, qcfs, "auto", dtype, s),
        "qac[torch kernels]": _train_step(arch, qac, "torch", dtype, s),
    }
    try:
        rounds = s.rounds if s.rounds < 5 else max(s.rounds, 9)  # steps are noisy: more rounds
        timing = interleaved(candidates, rounds=rounds, warmup=max(2, s.warmup), device=s.device)
    finally:
        kernels.set_backend("auto")
    base = timing["relu"]["median_s"]
    rows = []
    for name, t in timing.items():
        ratio = t["median_s"] / base
        target = 1.10 if dtype == "fp32" and name in ("qac", "qcfs") else None
        rows.append(
            {
                "arch": arch,
                "dtype": dtype,
                "activation": name,
                "batch": s.batch,
                "step_ms": 1e3 * t["median_s"],
                "img_s": _img_s(s.batch, t["median_s"]),
                "ratio_to_relu": ratio,
                "target": target,
                "met": None if target is None else ratio <= target,
            }
        )
    return rows


# -- 4. one-pass QCFS sweep ------------------------------------------------------------------
def sweep(
    arch: str, s: Settings, timesteps: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
) -> list[dict]:
    """Table 8's T sweep: one simulation of max(T) steps against one simulation per T."""
    images_cpu = benchmark_images(s.batch)
    ann = benchmark_ann(arch, images_cpu, activation="qcfs", timesteps=8).to(s.device)
    images = images_cpu.to(s.device)
    labels = torch.zeros(s.batch, dtype=torch.long, device=s.device)
    loader = [(images, labels)]
    snns = {T: to_snn(ann, "qcfs", timesteps=T).to(s.device).eval() for T in timesteps}

    def one_pass() -> dict[int, float]:
        return qcfs_sweep(ann, loader, list(timesteps), averaged=False, progress=False)

    def separate() -> dict[int, float]:
        out = {}
        with torch.no_grad():
            for T, snn in snns.items():
                out[T] = float((snn(images).argmax(1) == labels).float().mean() * 100)
        return out

    same = one_pass() == separate()
    timing = interleaved(
        {"one_pass": one_pass, "separate": separate},
        rounds=max(1, s.rounds // 2),
        warmup=0,
        device=s.device,
    )
    t1, t2 = timing["one_pass"]["median_s"], timing["separate"]["median_s"]
    return [
        {
            "arch": arch,
            "timesteps": list(timesteps),
            "batch": s.batch,
            "one_pass_s": t1,
            "separate_s": t2,
            "speedup": t2 / t1,
            "ideal_speedup": sum(timesteps) / max(timesteps),
            "same_accuracies": same,
        }
    ]


# -- 5. workflow overhead --------------------------------------------------------------------
def _snakemake(args: list[str]) -> tuple[float, str, int]:
    cmd = [sys.executable, "-m", "snakemake", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout + proc.stderr, proc.returncode


def workflow() -> list[dict]:
    """``snakemake -n all`` at paper scale (every job listed) and a no-op smoke rerun."""
    rows = []
    seconds, out, rc = _snakemake(["-n", "all", "--config", "scale=paper"])
    jobs = re.search(r"^total\s+(\d+)", out, re.M)
    row = {
        "command": "snakemake -n all --config scale=paper",
        "seconds": seconds,
        "jobs": int(jobs.group(1)) if jobs else None,
        "returncode": rc,
        "target_s": 10.0,
        "met": rc == 0 and seconds <= 10.0,
    }
    if rc != 0:  # e.g. snakemake not installed (the workflow extra): say why, do not time it
        lines = [line for line in out.strip().splitlines() if line.strip()]
        row.update({"seconds": None, "note": f"snakemake failed: {lines[-1] if lines else rc}"})
    rows.append(row)
    _, out, rc = _snakemake(["-n", "all", "--config", "scale=smoke"])
    if rc == 0 and "Nothing to be done" in out:
        seconds, out, rc = _snakemake(["--cores", "1", "all", "--config", "scale=smoke"])
        rows.append(
            {
                "command": "snakemake --cores 1 all --config scale=smoke (no-op)",
                "seconds": seconds,
                "jobs": 0,
                "returncode": rc,
                "target_s": None,
                "met": None,
            }
        )
    else:
        rows.append(
            {
                "command": "snakemake --cores 1 all --config scale=smoke (no-op)",
                "seconds": None,
                "note": "not measured: the smoke results are incomplete; run "
                "`snakemake --cores 2 all --config scale=smoke` first",
                "met": None,
            }
        )
    return rows
