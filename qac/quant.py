"""Activation quantizers: QAC in the paper's four parameterisations, and the QCFS baseline.

Every quantizer computes the paper's Eq. 5,

    Q(x) = (alpha / T) * clip(round(x * T / alpha), 0, T),

with round-half-up rounding ``round(z) = floor(z + 1/2)`` (``torch.round`` rounds half to even and
would break the exact IF-neuron equivalence of :mod:`qac.convert`). What differs between the cases
is which two of (n, d, alpha) are learnable parameters (Sec. 4.2, Eqs. 7-10):

======  ==============  ==================================  ==========================
case    parameters      derived                             paper gradients
======  ==============  ==================================  ==========================
1       ``n``, ``d``    alpha = d * 2**n, T = 2**n          Eq. 7
2       ``n``, ``alpha``  d = alpha / 2**n, T = 2**n        Eq. 8
3       ``d``, ``alpha``  T = alpha / d, n = log2(T)        Eq. 9
4       ``t``, ``alpha``  T = t, n = log2(t)                Eq. 10
======  ==============  ==================================  ==========================

All four gradient laws follow from ONE straight-through rule applied to Q(x; alpha, T) (see
:class:`_QuantizeSTE`) and the chain rule through each case's parameterisation; the tests check
the result against the closed forms of Eqs. 7-10 in all three regions.

Integer timesteps. An SNN layer needs an integer number of timesteps. With
``integer_timesteps=True`` (the default) the forward pass uses an integer T while the backward
pass sees the continuous parameter (straight-through), so the quantized ANN that is trained is
exactly the one that is converted:

- cases 1-2 (``rounding="bits"``, the default): Sec. 4.2 says "n in N denotes the bit-width",
  so the bit-width is made an integer, ``n_int = max(0, floor(n + 1/2))``, and
  ``T = 2**n_int`` is a power of two (1, 2, 4, 8, ...; the reported bits log2 T are integers).
  The gradient reaches the continuous n through ``dT/dn = T ln 2`` at ``T = 2**n_int``.
  ``rounding="timesteps"`` keeps the earlier rule, rounding ``T = 2**n`` itself to the nearest
  integer (T may then be 3, 5, 6, ... and the bit-width fractional);
- cases 3-4 (and cases 1-2 with ``rounding="timesteps"``): ``T_int = max(1, floor(T + 1/2))``.

The closed forms of Eqs. 7-10 then hold with T (and n, alpha = d T in case 1) replaced by the
forward pass's integer values. With ``integer_timesteps=False`` the forward pass uses the
continuous T exactly as Eq. 5 is written (the clip's upper bound may then be fractional).
Case 3 may drive d to 0 (T = alpha/d -> infinity, reported as INF by the paper); then the
quantizer degenerates to ``clip(x, 0, alpha)`` (the limit of Eq. 5), :attr:`QACQuantizer.timesteps`
returns ``inf`` and :attr:`QACQuantizer.T` raises :class:`InfiniteTimestepsError`.

Two implementations. Per-layer (scalar alpha, T) quantizers of float32, float64 and bfloat16 CPU
tensors run the fused kernel of :mod:`qac.kernels`; everything else (and ``QAC_KERNELS=torch``)
runs plain PyTorch operations. Guarantees, for every input (NaN and +-Inf included) and every
memory layout: the forward output and dQ/dx are bitwise equal between the two (NaN in the same
places, payload aside). A NaN x gives a
NaN output, passes the gradient to x (as PyTorch's ``hardtanh_backward``) and makes the alpha
and T gradients NaN; x = +Inf is above alpha (Q = alpha, dQ/dalpha = 1) and x = -Inf below
(every gradient 0). The alpha and T gradients are sums over all elements: both implementations
form the same per-element terms (in the tensor's dtype) and add them in float64, each in a fixed
order of its own, then round once to the parameter's dtype. They are bitwise equal whenever the
float64 sum is exact (terms that span fewer than about 53 - 24 - log2(numel) binades in float32;
practically always in bfloat16) and otherwise equal or 1 ulp apart, each within 1 ulp of the
exactly rounded sum unless the terms cancel to far below their magnitude.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qac import kernels

__all__ = [
    "QACQuantizer",
    "QCFSQuantizer",
    "InfiniteTimestepsError",
    "quantize",
    "round_half_up",
    "is_quantizer",
]

LN2 = math.log(2.0)


class InfiniteTimestepsError(ValueError):
    """Raised when an integer timestep is requested from a quantizer whose T is infinite."""


def round_half_up(z: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties up: ``floor(z + 1/2)`` (Eq. 5's rounding, as used by QCFS)."""
    return torch.floor(z + 0.5)


class _QuantizeSTE(torch.autograd.Function):
    """Q(x; alpha, T) of Eq. 5 with the straight-through estimator for the rounding.

    Backward (with Q the forward value and regions taken on x, as in Eqs. 7-10):

    - ``0 <= x <= alpha``: dQ/dx = 1, dQ/dalpha = (Q - x) / alpha, dQ/dT = -(Q - x) / T
      (the STE applied to ``Q = d * round(x / d)`` with ``d = alpha / T``);
    - ``x > alpha``: Q = alpha, so dQ/dalpha = 1 and dQ/dx = dQ/dT = 0;
    - ``x < 0``: Q = 0, every gradient is 0.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        infinite = not bool(torch.isfinite(T).all())
        scalar = alpha.dim() == 0 and T.dim() == 0
        ctx.infinite = infinite
        ctx.scalar = scalar
        ctx.native = False
        if scalar and not infinite and _native_ok(x):  # fused kernel; saves x only
            a, t = float(alpha), float(T)
            x = _dense(x)
            ctx.native = True
            ctx.save_for_backward(x, alpha, T)
            return kernels.native_module().quantize_forward(x, t / a, a / t, t)
        if infinite:
            out = torch.minimum(torch.clamp(x, min=0), alpha)
        elif scalar:  # the common per-layer case: fused, in place, Python-scalar bounds
            a, t = float(alpha), float(T)
            out = (x * (t / a)).add_(0.5).floor_().clamp_(0.0, t).mul_(a / t)
        else:
            levels = torch.clamp(round_half_up(x * T / alpha), min=0)
            out = alpha / T * torch.minimum(levels, T)
        ctx.save_for_backward(x, alpha, T, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if ctx.native:
            return _native_backward(ctx, grad_out)
        x, alpha, T, out = ctx.saved_tensors
        need_x, need_alpha, need_T = ctx.needs_input_grad
        if ctx.scalar:  # fused selects; x = 0, alpha (measure zero) and NaN as the kernel does
            a = float(alpha)
            grad_x = torch.ops.aten.hardtanh_backward(grad_out, x, 0.0, a) if need_x else None
            if not (need_alpha or need_T):
                return grad_x, None, None
            # the kernel's two float64 sums: grad * (Q - x) inside, grad where x >= alpha
            terms = torch.ops.aten.hardtanh_backward(grad_out * (out - x), x, 0.0, a)
            err = terms.sum(dtype=torch.float64).to(alpha.dtype)
            above = torch.where(x >= alpha, grad_out, 0).sum(dtype=torch.float64)
            return grad_x, *_parameter_grads(ctx, err, above.to(alpha.dtype), alpha, T)
        inside = (x >= 0) & (x <= alpha)
        grad_in = torch.where(inside, grad_out, 0)  # dQ/dx: STE
        grad_x = grad_in if need_x else None
        grad_alpha = grad_T = None
        if not (need_alpha or need_T):
            return grad_x, None, None
        err = torch.where(inside, grad_out * (out - x), 0)  # no 0 * inf outside
        if need_alpha:
            grad_alpha = _sum_to(err / alpha + torch.where(x > alpha, grad_out, 0), alpha.shape)
        if need_T:
            grad_T = torch.zeros_like(T) if ctx.infinite else _sum_to(-err / T, T.shape)
        return grad_x, grad_alpha, grad_T


def _native_ok(x: torch.Tensor) -> bool:
    return x.dtype in (torch.float32, torch.float64, torch.bfloat16) and kernels.use_native(x)


def _dense(x: torch.Tensor) -> torch.Tensor:
    return x if kernels.standard_layout(x) else x.contiguous()


def _native_backward(ctx, grad_out: torch.Tensor):  # type: ignore[no-untyped-def]
    """The scalar-case backward of :class:`_QuantizeSTE` from the fused kernel's two sums."""
    x, alpha, T = ctx.saved_tensors
    a, t = float(alpha), float(T)
    grad_x, sums = kernels.native_module().quantize_backward(grad_out, x, a, t / a, a / t, t)
    err, above = sums[0].to(alpha.dtype), sums[1].to(alpha.dtype)  # sum g*(Q-x) inside; g above
    return (grad_x if ctx.needs_input_grad[0] else None), *_parameter_grads(
        ctx, err, above, alpha, T
    )


def _parameter_grads(ctx, err, above, alpha, T):  # type: ignore[no-untyped-def]
    """(dL/dalpha, dL/dT) of the scalar case from the sums of g*(Q - x) inside and g above."""
    _, need_alpha, need_T = ctx.needs_input_grad
    grad_alpha = err / alpha + above if need_alpha else None
    if not need_T:
        return grad_alpha, None
    return grad_alpha, torch.zeros_like(T) if ctx.infinite else -err / T


def _sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a broadcast gradient back to a parameter's shape."""
    if grad.shape == shape:
        return grad
    if len(shape) == 0:
        return grad.sum()
    lead = grad.dim() - len(shape)
    grad = grad.sum(dim=tuple(range(lead))) if lead > 0 else grad
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    return grad.sum(dim=dims, keepdim=True) if dims else grad


def quantize(x: torch.Tensor, alpha: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Functional Eq. 5: ``(alpha/T) * clip(floor(x*T/alpha + 1/2), 0, T)`` with STE gradients.

    ``alpha`` and ``T`` are tensors broadcastable against ``x`` (scalars for per-layer
    quantizers); ``T`` may be fractional or ``inf`` (then the result is ``clip(x, 0, alpha)``).
    """
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    T = torch.as_tensor(T, dtype=x.dtype, device=x.device)
    return _QuantizeSTE.apply(x, alpha, T)


class _RoundSTE(torch.autograd.Function):
    """``max(low, floor(v + 1/2))`` forward (exactly), identity backward (straight-through)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, low: float) -> torch.Tensor:
        return torch.clamp(round_half_up(v), min=low)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return grad_out, None


def _ste_integer(T: torch.Tensor) -> torch.Tensor:
    """Integer T (>= 1) for the forward pass with the continuous T's gradient; ``inf`` stays."""
    if not bool(torch.isfinite(T).all()):
        return T
    return _RoundSTE.apply(T, 1.0)


ROUNDINGS = ("bits", "timesteps")


class QACQuantizer(nn.Module):
    """QAC activation quantizer (Eq. 5) in one of the paper's four parameterisations (Sec. 4.2).

    Args:
        case: 1 (learn ``n``, ``d``; Eq. 7), 2 (``n``, ``alpha``; Eq. 8), 3 (``d``, ``alpha``;
            Eq. 9) or 4 (``t``, ``alpha``; Eq. 10).
        alpha: initial clipping threshold alpha (> 0), which becomes the SNN threshold v_th.
        timesteps: initial number of quantization levels T (>= 1), which becomes the layer's
            SNN timestep count (Theorem 1, Eq. 6).
        integer_timesteps: make T an integer in the forward pass (straight-through); see the
            module docstring.
        rounding: cases 1-2 with integer timesteps: ``"bits"`` (default) rounds the bit-width
            n, so T = 2**round(n) is a power of two; ``"timesteps"`` rounds T = 2**n instead.
            Cases 3-4 always round T.

    The learnable parameters carry the paper's names: ``n``, ``d``, ``alpha``, ``t``.
    """

    CASE_PARAMETERS = {1: ("n", "d"), 2: ("n", "alpha"), 3: ("d", "alpha"), 4: ("t", "alpha")}

    def __init__(
        self,
        case: int,
        alpha: float = 8.0,
        timesteps: float = 4.0,
        *,
        integer_timesteps: bool = True,
        rounding: str = "bits",
    ) -> None:
        super().__init__()
        if case not in self.CASE_PARAMETERS:
            raise ValueError(f"unknown QAC case {case!r}: expected one of 1, 2, 3, 4 (Sec. 4.2)")
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown QAC rounding {rounding!r}: expected one of {ROUNDINGS}")
        alpha = float(alpha)
        timesteps = float(timesteps)
        if not alpha > 0 or not math.isfinite(alpha):
            raise ValueError(f"QAC alpha must be a positive finite number, got {alpha}")
        if not timesteps >= 1 or not math.isfinite(timesteps):
            raise ValueError(f"QAC timesteps T must be a finite number >= 1, got {timesteps}")
        self.case = case
        self.integer_timesteps = integer_timesteps
        self.rounding = rounding
        init = {"n": math.log2(timesteps), "d": alpha / timesteps, "alpha": alpha, "t": timesteps}
        for name in self.CASE_PARAMETERS[case]:
            self.register_parameter(name, nn.Parameter(torch.tensor(init[name])))
        if case == 1:  # d = alpha / T at the forward pass's T: the initial alpha is `alpha`
            with torch.no_grad():
                self.d.fill_(alpha / float(self.forward_timesteps()))

    @torch.no_grad()
    def set_threshold(self, alpha: float) -> None:
        """Make the clipping threshold ``alpha`` and keep T (e.g. from a float model's activation
        percentile before a quantization-aware fine-tune): case 1 sets d = alpha / T, case 3
        alpha and d = alpha / T, cases 2 and 4 alpha."""
        alpha = float(alpha)
        if not alpha > 0 or not math.isfinite(alpha):
            raise ValueError(f"QAC alpha must be a positive finite number, got {alpha}")
        T = float(self.forward_timesteps())
        if self.case in (1, 3):
            self.d.fill_(alpha / T)
        if self.case in (2, 3, 4):
            self.alpha.fill_(alpha)

    # -- the parameterisation -------------------------------------------------------------
    def continuous_timesteps(self) -> torch.Tensor:
        """The continuous T of the parameterisation (2**n, alpha/d or t), with autograd."""
        if self.case in (1, 2):
            return torch.pow(2.0, self.n)
        if self.case == 3:
            d = self.d
            if float(d.detach()) <= 0:  # T = alpha/d is infinite (or meaningless): report INF
                return torch.full_like(d, math.inf)
            return self.alpha / d
        return self.t

    def forward_timesteps(self) -> torch.Tensor:
        """T as used in the forward pass (see the module docstring), with autograd."""
        if self.integer_timesteps and self.case in (1, 2) and self.rounding == "bits":
            T = torch.pow(2.0, _RoundSTE.apply(self.n, 0.0))  # integer bit-width n (Sec. 4.2)
        else:
            T = self.continuous_timesteps()
            if self.integer_timesteps:
                T = _ste_integer(T)
        return T

    def alpha_and_levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, T) as used in the forward pass, both differentiable w.r.t. the parameters."""
        T = self.forward_timesteps()
        alpha = self.d * T if self.case == 1 else self.alpha
        return alpha, T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, T = self.alpha_and_levels()
        return _QuantizeSTE.apply(x, alpha.to(x.dtype), T.to(x.dtype))

    # -- what the converter and the statistics read ---------------------------------------
    @property
    def threshold(self) -> float:
        """alpha, the clipping threshold; the converted IF neuron's v_th."""
        return float(self.threshold_tensor())

    def threshold_tensor(self) -> torch.Tensor:
        """alpha as a detached tensor in the parameters' dtype."""
        alpha, _ = self.alpha_and_levels()
        return alpha.detach().clone()

    @property
    def timesteps(self) -> float:
        """T as used in the forward pass: an integer-valued float (a power of two in cases 1-2 with
        ``rounding="bits"``), ``inf`` for a degenerate case 3, fractional without
        ``integer_timesteps``."""
        _, T = self.alpha_and_levels()
        return float(T.detach())

    @property
    def T(self) -> int:
        """The layer's integer SNN timestep count (>= 1); raises if T is infinite (case 3)."""
        T = self.timesteps
        if not math.isfinite(T):
            raise InfiniteTimestepsError(
                f"QAC case-3 quantizer has T = alpha/d = inf (d = {float(self.d.detach()):.3g}); "
                "the paper reports such layers as INF and they cannot be converted to an SNN"
            )
        if not self.integer_timesteps:
            return max(1, int(math.floor(T + 0.5)))
        return int(T)

    def extra_repr(self) -> str:
        params = ", ".join(
            f"{name}={float(getattr(self, name).detach()):.4g}"
            for name in self.CASE_PARAMETERS[self.case]
        )
        return f"case={self.case}, {params}, T={self.timesteps:.4g}"


class QCFSQuantizer(nn.Module):
    """QCFS activation (Bu et al., 2023): ``theta * clip(floor(x*L/theta + 1/2) / L, 0, 1)``.

    ``theta`` is learnable (initial value 8.0 as in the QCFS code), ``L`` (``levels``) is fixed.
    This is Eq. 5 with alpha = theta and T = L, so it shares :func:`quantize` and its STE
    gradients (dQ/dtheta = (Q - x)/theta inside, 1 above). After conversion the SNN may run any
    number of timesteps, independent of L (Table 8).
    """

    def __init__(self, levels: int, theta: float = 8.0) -> None:
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"QCFS levels L must be an integer >= 1, got {levels!r}")
        if not float(theta) > 0:
            raise ValueError(f"QCFS theta must be positive, got {theta}")
        self.levels = int(levels)
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    @torch.no_grad()
    def set_threshold(self, theta: float) -> None:
        """Make the threshold ``theta`` (see :meth:`QACQuantizer.set_threshold`)."""
        if not float(theta) > 0 or not math.isfinite(float(theta)):
            raise ValueError(f"QCFS theta must be a positive finite number, got {theta}")
        self.theta.fill_(float(theta))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = torch.tensor(float(self.levels), dtype=x.dtype, device=x.device)
        return _QuantizeSTE.apply(x, self.theta.to(x.dtype), T)

    @property
    def threshold(self) -> float:
        """theta, the converted IF neuron's v_th."""
        return float(self.theta.detach())

    def threshold_tensor(self) -> torch.Tensor:
        """theta as a detached tensor in the parameter's dtype."""
        return self.theta.detach().clone()

    @property
    def timesteps(self) -> float:
        return float(self.levels)

    @property
    def T(self) -> int:
        """L; the converter uses it only when no uniform simulation length is given."""
        return self.levels

    def extra_repr(self) -> str:
        return f"L={self.levels}, theta={float(self.theta.detach()):.4g}"


def is_quantizer(module: nn.Module) -> bool:
    """True for the activation quantizers that :func:`qac.convert.to_snn` turns into IF neurons."""
    return isinstance(module, QACQuantizer | QCFSQuantizer)
