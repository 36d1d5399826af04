"""Multi-step soft-reset integrate-and-fire (IF) neuron (Sec. 3.1, Eqs. 1-3).

For an input current ``I`` shaped ``[T, B, ...]`` the neuron runs, for t = 1..T,

    m(t) = v(t-1) + I(t)                 (Eq. 2, with I(t) = W^l v_th^{l-1} s^{l-1}(t))
    s(t) = H(m(t) - v_th)                (Eq. 3; spikes when m(t) >= v_th)
    v(t) = m(t) - v_th * s(t)            (Eq. 1, soft reset)

and emits ``v_th * s(t)``. An input with a leading time dimension of 1 is a current that is
constant over time (the direct-encoded image, or anything behind an ``average`` alignment); it is
fed at every one of the neuron's T steps without being copied.

The initial membrane potential ``v0`` and the threshold ``v_th`` are tensors (scalar, per channel
``[C]`` or per neuron ``[C, *spatial]``) so that calibration (Sec. 4.4, Eqs. 15-17) can learn them.
The Heaviside step has a surrogate derivative for backpropagation (Wu et al., 2018):

- ``"rect"`` (default): ``H'(u) = 1/w`` for ``|u| < w/2``, else 0;
- ``"triangle"``: ``H'(u) = max(0, 1 - |u|/w) / w``;

with width ``w = surrogate_width * v_th`` (the width scales with the layer's threshold, which
differs per layer; both shapes integrate to 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qac import kernels

__all__ = ["IFNeuron", "heaviside", "SURROGATES"]


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, width: torch.Tensor, shape: str) -> torch.Tensor:
        ctx.save_for_backward(u, width)
        ctx.shape = shape
        spikes = (u >= 0).to(u.dtype)
        return torch.where(u.isnan(), u, spikes)  # NaN in, NaN out (as the inference path)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        u, width = ctx.saved_tensors
        if ctx.shape == "rect":
            dh = (u.abs() < width / 2).to(u.dtype) / width
        else:
            dh = torch.clamp(1 - u.abs() / width, min=0) / width
        return grad_out * dh, None, None


SURROGATES = ("rect", "triangle")


def heaviside(u: torch.Tensor, width: torch.Tensor | float = 1.0, surrogate: str = "rect"):
    """Heaviside step ``H(u) = [u >= 0]`` with a rectangular or triangular surrogate gradient."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}: expected one of {SURROGATES}")
    width = torch.as_tensor(width, dtype=u.dtype, device=u.device)
    return _Heaviside.apply(u, width, surrogate)


def _as_state_tensor(value: torch.Tensor | float, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        t = value.detach().clone()  # keep the caller's precision (float64 for exactness tests)
    else:
        t = torch.as_tensor(value, dtype=torch.get_default_dtype())
    if not torch.isfinite(t).all():
        raise ValueError(f"IF neuron {name} must be finite, got {value}")
    return t


def empty_steps(T: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised ``[T, *like.shape]`` tensor whose steps share ``like``'s memory format.

    Keeping the channels_last layout of conv activations through the time dimension lets the
    next layer fold ``[T, B, ...]`` into ``[T*B, ...]`` without a copy or a layout conversion.
    """
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last):
        flat = torch.empty(
            (T * like.shape[0], *like.shape[1:]),
            dtype=like.dtype,
            device=like.device,
            memory_format=torch.channels_last,
        )
        return flat.unflatten(0, (T, like.shape[0]))
    return torch.empty((T, *like.shape), dtype=like.dtype, device=like.device)


def _simulate_native(
    current: torch.Tensor, v0: torch.Tensor, v_th: torch.Tensor, T: int
) -> torch.Tensor:
    """The fused CPU kernel (bitwise equal to :meth:`IFNeuron._simulate_inplace`)."""
    step = current[0]
    out = empty_steps(T, step)
    steps_dense = current.shape[0] == 1 or current.stride(0) == step.numel()
    if not (kernels.standard_layout(step) and steps_dense and out[0].stride() == step.stride()):
        current = current.contiguous()  # the kernel walks input and output as one flat layout
        out = torch.empty((T, *step.shape), dtype=step.dtype, device=step.device)

    def full(p: torch.Tensor) -> torch.Tensor:
        if p.numel() == 1:
            return p.reshape(()).contiguous()
        filled = torch.empty_like(out[0])
        filled.copy_(p.expand_as(filled))
        return filled

    kernels.native_module().if_simulate(current, out, full(v0), full(v_th))
    return out


class IFNeuron(nn.Module):
    """Soft-reset IF neuron over ``[T, B, ...]`` inputs (Eqs. 1-3).

    Args:
        timesteps: T, the number of steps this layer runs (>= 1).
        v_th: firing threshold (> 0): scalar, per channel ``[C]`` or per neuron ``[C, ...]``.
        v0: initial membrane potential ``v(0)``: ``"half"`` (v_th/2, Bu et al. 2022/2023 and the
            paper's default), ``"zero"``, a number, or a tensor shaped like ``v_th`` can be.
        surrogate: ``"rect"`` or ``"triangle"`` surrogate for dH/du (see module docstring).
        surrogate_width: width of the surrogate in units of ``v_th``.
        learn: make ``v0`` and ``v_th`` trainable parameters (calibration); otherwise buffers.
        record: accumulate spike statistics (:attr:`spike_count`, :attr:`neuron_steps`).
    """

    def __init__(
        self,
        timesteps: int,
        v_th: torch.Tensor | float,
        v0: torch.Tensor | float | str = "half",
        *,
        surrogate: str = "rect",
        surrogate_width: float = 1.0,
        learn: bool = False,
        record: bool = False,
    ) -> None:
        super().__init__()
        if int(timesteps) != timesteps or timesteps < 1:
            raise ValueError(f"IF neuron timesteps T must be an integer >= 1, got {timesteps!r}")
        if surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {surrogate!r}: expected one of {SURROGATES}")
        if not surrogate_width > 0:
            raise ValueError(f"surrogate_width must be positive, got {surrogate_width}")
        v_th_t = _as_state_tensor(v_th, "threshold v_th")
        if not bool((v_th_t > 0).all()):
            raise ValueError(f"IF neuron threshold v_th must be positive, got {v_th}")
        if isinstance(v0, str):
            if v0 == "half":
                v0_t = v_th_t / 2
            elif v0 == "zero":
                v0_t = torch.zeros_like(v_th_t)
            else:
                raise ValueError(f"unknown v0 option {v0!r}: expected 'half', 'zero' or a tensor")
        else:
            v0_t = _as_state_tensor(v0, "initial membrane potential v0")
        self.timesteps = int(timesteps)
        self.surrogate = surrogate
        self.surrogate_width = float(surrogate_width)
        self.record = record
        self.reference = False  # plain Eqs. 1-3 (explicit comparison), for the reference path
        self._learn = False
        self.register_buffer("v_th", v_th_t)
        self.register_buffer("v0", v0_t)
        if learn:
            self.set_learnable(True)
        self.reset_stats()

    # -- state ----------------------------------------------------------------------------
    @property
    def T(self) -> int:
        return self.timesteps

    def set_learnable(self, learn: bool = True) -> None:
        """Turn ``v0``/``v_th`` into trainable parameters (or back into buffers)."""
        if learn == self._learn:
            return
        v_th, v0 = self.v_th.detach(), self.v0.detach()
        del self.v_th, self.v0
        if learn:
            self.v_th = nn.Parameter(v_th)
            self.v0 = nn.Parameter(v0)
        else:
            self.register_buffer("v_th", v_th)
            self.register_buffer("v0", v0)
        self._learn = learn

    def expand_v0(self, num_channels: int) -> None:
        """Give every channel its own initial membrane potential (calibration's default)."""
        if self.v0.dim() == 1 and self.v0.numel() == num_channels:
            return
        if self.v0.dim() != 0:
            raise ValueError(f"v0 is already shaped {tuple(self.v0.shape)}; cannot make it [C]")
        value = self.v0.detach().expand(num_channels).clone()
        if isinstance(self.v0, nn.Parameter):
            self.v0 = nn.Parameter(value)
        else:
            self.v0 = value

    def reset_stats(self) -> None:
        self.spike_count = 0.0  # total spikes over every sample, neuron and step recorded
        self.neuron_steps = 0  # total (sample, neuron, step) triples recorded
        self.samples = 0

    def stats(self) -> dict[str, float]:
        rate = self.spike_count / self.neuron_steps if self.neuron_steps else math.nan
        per_sample = self.spike_count / self.samples if self.samples else math.nan
        return {
            "timesteps": self.timesteps,
            "spikes": self.spike_count,
            "spikes_per_sample": per_sample,
            "firing_rate": rate,
        }

    # -- simulation -----------------------------------------------------------------------
    @staticmethod
    def _broadcast(p: torch.Tensor, feature_dims: int) -> torch.Tensor:
        """Shape a scalar/[C]/[C,...] state tensor to broadcast over ``[B, C, *spatial]``."""
        if p.dim() == 0 or p.dim() == feature_dims:
            return p
        if p.dim() == 1:
            return p.reshape(p.shape[0], *([1] * (feature_dims - 1)))
        raise ValueError(
            f"IF state of shape {tuple(p.shape)} does not fit features with {feature_dims} dims"
        )

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Simulate T steps. ``current``: ``[T, B, ...]`` or ``[1, B, ...]`` (constant in time)."""
        T_in = current.shape[0]
        if T_in not in (1, self.timesteps):
            raise ValueError(
                f"IF neuron with T={self.timesteps} got an input with {T_in} timesteps; "
                "align the input first (qac.align)"
            )
        feature_dims = current.dim() - 2
        v_th = self._broadcast(self.v_th, feature_dims).to(current.dtype)
        v = self._broadcast(self.v0, feature_dims).to(current.dtype)
        width = (v_th.detach() * self.surrogate_width).to(current.dtype)
        needs_grad = torch.is_grad_enabled() and (
            current.requires_grad or v_th.requires_grad or v.requires_grad
        )
        if needs_grad or self.reference:
            out = self._simulate_autograd(current, v, v_th, width)
        else:
            out = self._simulate_inplace(current, v, v_th)
        if self.record:
            with torch.no_grad():
                self.spike_count += float(torch.count_nonzero(out))
                self.neuron_steps += out.numel()
                self.samples += out.shape[1]
        return out

    def _simulate_autograd(self, current, v, v_th, width) -> torch.Tensor:
        """Differentiable simulation (surrogate gradient through time), for calibration."""
        T_in = current.shape[0]
        spikes = []
        for t in range(self.timesteps):
            m = v + current[0 if T_in == 1 else t]
            s = _Heaviside.apply(m - v_th, width, self.surrogate)
            v = m - v_th * s
            spikes.append(s)
        return torch.stack(spikes) * v_th

    @torch.no_grad()
    def _simulate_inplace(self, current, v0, v_th) -> torch.Tensor:
        """Inference: the same Eqs. 1-3 with in-place arithmetic and a preallocated output.

        The spike is computed as ``clip(floor(m / v_th), 0, 1)``, which equals
        ``H(m - v_th) = [m >= v_th]`` exactly in IEEE arithmetic for v_th > 0 (division is
        correctly rounded and monotone, and no quotient below 1 rounds up to 1); it avoids the
        comparison and bool-to-float kernels, which are several times slower on CPUs.
        """
        if current.dtype in (torch.float32, torch.float64) and kernels.use_native(current):
            return _simulate_native(current, v0, v_th, self.timesteps)
        T_in = current.shape[0]
        v = torch.empty_like(current[0])
        v.copy_(v0.expand_as(v) if v0.dim() else v0)
        out = empty_steps(self.timesteps, v)
        for t in range(self.timesteps):
            v.add_(current[0 if T_in == 1 else t])  # m(t) = v(t-1) + I(t)
            spike = out[t]
            torch.div(v, v_th, out=spike).floor_().clamp_(0, 1)  # s(t) = H(m(t) - v_th)
            spike.mul_(v_th)  # output v_th * s(t)
            v.sub_(spike)  # soft reset: v(t) = m(t) - v_th * s(t)
        return out

    def extra_repr(self) -> str:
        shape = tuple(self.v0.shape)
        return f"T={self.timesteps}, v_th_shape={tuple(self.v_th.shape)}, v0_shape={shape}"
