"""Temporal alignment between layers with different timesteps (Sec. 4.3, Eqs. 11-13).

A spike train ``x`` shaped ``[T_in, ...]`` is mapped to ``[T_out, ...]`` by

- ``replicate``: ``out[t] = x[floor(t * T_in / T_out)]`` (0-based nearest-index mapping, the
  "integer indexing" of Sec. 4.3, as ``torch.nn.functional.interpolate(mode="nearest")``); works
  for any ``T_out`` including ``T_out % T_in != 0`` (e.g. 4 -> 5 maps to [0, 0, 1, 2, 3]);
- ``truncate``: keep the first ``T_out`` steps (reduction only);
- ``average``: the time mean (Eq. 12) broadcast to ``T_out`` steps (Eq. 13);
- ``none``: pass unchanged (only when ``T_in == T_out``).

An :class:`AlignmentPolicy` says which method to use at a boundary where the next layer's T is
larger (``expand``), smaller (``reduce``) or equal (``equal``). Named policies: the four of
Table 4 (``repl+aver``, ``repl+trunc``, ``aver+trunc``, ``aver+aver``; spikes pass unchanged at
equal-T boundaries), ``qcfs`` (uniform T, nothing to align) and ``qcfs+aver`` (averaging also
at equal-T boundaries, Table 8's "QCFS+aver"), ``aver+aver+aver`` (averaging everywhere: the
setting in which the SNN reproduces the quantized ANN exactly). ``"E+R+Q"`` strings spell any
policy (E for expand, R for reduce, Q for equal; ``repl``/``trunc``/``aver``/``none``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qac import kernels

__all__ = [
    "align",
    "align_signal",
    "time_mean",
    "AlignmentPolicy",
    "POLICIES",
    "METHODS",
    "TimeAlign",
]

METHODS = ("replicate", "truncate", "average", "none")
_SHORT = {"repl": "replicate", "trunc": "truncate", "aver": "average", "avg": "average"}
_LONG_TO_SHORT = {"replicate": "repl", "truncate": "trunc", "average": "aver", "none": "none"}


def _method(name: str) -> str:
    method = _SHORT.get(name, name)
    if method not in METHODS:
        raise ValueError(f"unknown alignment method {name!r}: expected one of {METHODS}")
    return method


def replicate_indices(T_in: int, T_out: int) -> list[int]:
    """Source step of each output step for ``replicate``: ``floor(t * T_in / T_out)``."""
    return [(t * T_in) // T_out for t in range(T_out)]


def time_mean(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(dim=0, keepdim=True)`` for a ``[T, ...]`` train, as T-1 in-place additions.

    Each step is one dense block, so adding the steps in order is a streaming elementwise loop
    (one fused pass with the native kernels); a reduction over the outermost dimension of a
    channels_last tensor is several times slower on CPUs. The result keeps the steps' memory
    layout, and both paths add in step order (bitwise equal).
    """
    T = x.shape[0]
    if T == 1:
        return x
    step = x[0]
    native = x.dtype in (torch.float32, torch.float64) and not x.requires_grad
    dense = kernels.standard_layout(step) and x.stride(0) == step.numel()
    if native and dense and kernels.use_native(x):
        out = torch.empty_like(step)
        kernels.native_module().time_mean(x, out)
        return out.unsqueeze(0)
    total = x[0].clone()
    for t in range(1, T):
        total.add_(x[t])
    return total.div_(T).unsqueeze(0)


def align_signal(x: torch.Tensor, T_out: int, method: str) -> torch.Tensor:
    """Align ``x`` (``[T_in, ...]``) to ``T_out`` steps, keeping constant signals compact.

    A leading dimension of 1 means "constant over time" and stays 1 (every method maps a
    constant train to a constant train); ``average`` also returns a ``[1, ...]`` tensor. This is
    the form the SNN simulator uses; :func:`align` returns the materialised ``[T_out, ...]``.
    """
    method = _method(method)
    if T_out < 1 or int(T_out) != T_out:
        raise ValueError(f"alignment target T_out must be an integer >= 1, got {T_out!r}")
    T_in = x.shape[0]
    if method == "none":
        if T_in not in (1, T_out):
            raise ValueError(f"alignment 'none' needs T_in == T_out, got {T_in} -> {T_out}")
        return x
    if method == "truncate" and T_out > T_in and T_in != 1:
        raise ValueError(f"'truncate' only reduces timesteps, got {T_in} -> {T_out}")
    if T_in == 1:
        return x
    if method == "average":
        return time_mean(x)
    if method == "truncate":
        return x[:T_out]
    if T_in == T_out:
        return x
    if T_out % T_in == 0:  # plain repetition: each step k times
        return x.repeat_interleave(T_out // T_in, dim=0)
    index = torch.tensor(replicate_indices(T_in, T_out), device=x.device)
    return x.index_select(0, index)


def align(x: torch.Tensor, T_out: int, method: str) -> torch.Tensor:
    """Temporal alignment ``f(X, T_out)`` of Eq. 11 for ``x`` shaped ``[T_in, ...]``.

    Returns a ``[T_out, ...]`` tensor. Methods: ``replicate``, ``truncate``, ``average``,
    ``none`` (short names ``repl``, ``trunc``, ``aver`` are accepted).
    """
    if x.dim() < 1:
        raise ValueError("align expects a tensor with a leading time dimension")
    out = align_signal(x, T_out, method)
    if out.shape[0] == 1 and T_out != 1:
        out = out.expand(T_out, *out.shape[1:])
    return out


@dataclass(frozen=True)
class AlignmentPolicy:
    """Which alignment method to use when the next layer's T is larger/smaller/equal."""

    expand: str = "average"
    reduce: str = "average"
    equal: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "expand", _method(self.expand))
        object.__setattr__(self, "reduce", _method(self.reduce))
        object.__setattr__(self, "equal", _method(self.equal))
        if self.expand == "truncate":
            raise ValueError("'truncate' cannot expand the time dimension (expand=truncate)")
        if self.equal not in ("none", "average"):
            raise ValueError(f"equal-T boundaries take 'none' or 'average', got {self.equal!r}")

    def method_for(self, T_in: int, T_out: int) -> str:
        if T_out > T_in:
            return self.expand
        if T_out < T_in:
            return self.reduce
        return self.equal

    @property
    def name(self) -> str:
        short = _LONG_TO_SHORT
        base = f"{short[self.expand]}+{short[self.reduce]}"
        return base if self.equal == "none" else f"{base}+{short[self.equal]}"

    @classmethod
    def parse(cls, spec: str | AlignmentPolicy) -> AlignmentPolicy:
        """A policy from a name in :data:`POLICIES` or an ``"E+R[+Q]"`` string."""
        if isinstance(spec, AlignmentPolicy):
            return spec
        if spec in POLICIES:
            return POLICIES[spec]
        parts = spec.split("+")
        if len(parts) not in (2, 3):
            raise ValueError(
                f"unknown alignment policy {spec!r}: use one of {sorted(POLICIES)} or 'E+R[+Q]'"
            )
        return cls(*parts)


POLICIES: dict[str, AlignmentPolicy] = {
    "repl+aver": AlignmentPolicy("replicate", "average", "none"),
    "repl+trunc": AlignmentPolicy("replicate", "truncate", "none"),
    "aver+trunc": AlignmentPolicy("average", "truncate", "none"),
    "aver+aver": AlignmentPolicy("average", "average", "none"),
    "aver+aver+aver": AlignmentPolicy("average", "average", "average"),
    "qcfs": AlignmentPolicy("average", "average", "none"),
    "qcfs+aver": AlignmentPolicy("average", "average", "average"),
}


class TimeAlign(torch.nn.Module):
    """Marks the start of a synaptic path in a model: identity in the ANN.

    Models place one in front of every synaptic layer that reads a neuron's output, naming the
    activation module the path feeds (``target``; ``None`` for the output layer). When a model is
    converted (:func:`qac.convert.to_snn`) the placeholder is given the fed neuron's T and the
    alignment policy, and then aligns the incoming spike train (Eq. 11). Aligning spikes before a
    stateless layer equals aligning its output current (every method commutes with per-step
    affine maps), and an ``average`` here lets the following layers run once instead of T times.
    """

    def __init__(self, target: torch.nn.Module | None = None) -> None:
        super().__init__()
        # Kept out of the module tree (no double registration); deepcopy remaps it.
        object.__setattr__(self, "target", target)
        self.T_out: int | None = None
        self.policy: AlignmentPolicy | None = None
        self.record = False
        self.materialize = False  # reference simulation: every step stored explicitly
        self.reset_stats()

    def reset_stats(self) -> None:
        self.calls: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.T_out is None or self.policy is None:
            return x  # ANN mode, or the output layer (no neuron after it)
        T_in = x.shape[0]
        method = "none" if T_in == 1 else self.policy.method_for(T_in, self.T_out)
        if self.record:
            key = f"{T_in}->{self.T_out}:{method}"
            self.calls[key] = self.calls.get(key, 0) + 1
        if self.materialize:
            return align(x, self.T_out, method).contiguous()
        return align_signal(x, self.T_out, method)

    def extra_repr(self) -> str:
        if self.T_out is None:
            return ""
        policy = self.policy.name if self.policy else None
        return f"T_out={self.T_out}, policy={policy}"
