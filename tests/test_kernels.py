"""Fused kernels and the fast simulator against their plain references (bitwise where exact)."""

from __future__ import annotations

import math

import pytest
import torch

from qac import kernels
from qac.convert import neurons, quantizers, to_snn
from qac.models import build
from qac.neuron import IFNeuron
from qac.quant import QACQuantizer, QCFSQuantizer
from qac.runtime import tune_allocator


@pytest.fixture
def backend():
    """Run a block with a given kernel backend and restore the default afterwards."""

    def use(name: str) -> None:
        kernels.set_backend(name)

    yield use
    kernels.set_backend("auto")


def _current(T_in: int, B: int, dtype: torch.dtype, channels_last: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T_in * B, 8, 6, 5, generator=g) * 0.8).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.unflatten(0, (T_in, B))


def test_native_kernels_build():
    assert kernels.native_module() is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(
    "T,T_in,v_shape", [(4, 4, ()), (7, 1, (8,)), (3, 3, (8, 6, 5)), (1, 1, ())]
)
def test_if_native_equals_torch_bitwise(backend, dtype, channels_last, T, T_in, v_shape):
    current = _current(T_in, 5, dtype, channels_last)
    g = torch.Generator().manual_seed(1)
    v_th = (torch.rand(v_shape, generator=g) + 0.3).to(dtype)
    v0 = (torch.rand(v_shape, generator=g) * v_th).to(dtype)
    neuron = IFNeuron(T, v_th, v0=v0)
    outs = {}
    for name in ("torch", "native"):
        backend(name)
        with torch.no_grad():
            outs[name] = neuron(current)
    assert outs["native"].shape == (T, *current.shape[1:])
    assert outs["native"].stride() == outs["torch"].stride()  # same layout
    assert torch.equal(outs["native"], outs["torch"])
    assert 0 < int(outs["native"].count_nonzero()) < outs["native"].numel()


def test_if_native_handles_non_dense_input(backend):
    current = _current(4, 6, torch.float32, False)[:, ::2]  # strided batch
    neuron = IFNeuron(4, 0.7)
    backend("torch")
    with torch.no_grad():
        ref = neuron(current)
    backend("native")
    with torch.no_grad():
        assert torch.equal(neuron(current), ref)


def test_if_threshold_ties_fire(backend):
    """m == v_th exactly must spike (H(0) = 1), in both implementations."""
    current = torch.full((3, 1, 4), 0.5, dtype=torch.float32)
    for name in ("torch", "native"):
        backend(name)
        with torch.no_grad():
            out = IFNeuron(3, 1.0, v0=0.5)(current)
        assert out[:, 0, 0].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("make", [lambda: QACQuantizer(4, 2.5, 5.0), lambda: QCFSQuantizer(8, 1.7)])
def test_quantizer_native_equals_torch(backend, dtype, make):
    g = torch.Generator().manual_seed(3)
    x0 = (torch.randn(6, 8, 7, 7, generator=g) * 2).to(dtype)
    flat = x0.view(-1)  # boundary points x = 0 and x = alpha (measure zero, but they occur)
    flat[:3] = 0.0
    flat[3:6] = make().threshold_tensor().to(dtype)
    x0 = x0.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(x0.shape, generator=g).to(dtype)
    results = {}
    for name in ("torch", "native"):
        backend(name)
        q = make().to(dtype)
        x = x0.clone().requires_grad_(True)
        y = q(x)
        y.backward(grad)
        params = {n: p.grad.clone() for n, p in q.named_parameters()}
        results[name] = (y.detach(), x.grad.clone(), params)
    (y_t, gx_t, p_t), (y_n, gx_n, p_n) = results["torch"], results["native"]
    assert torch.equal(y_n, y_t)  # same arithmetic, same rounding
    assert torch.equal(gx_n, gx_t)
    # parameter gradients are sums: double in the kernel, the tensor's dtype in PyTorch
    tol = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 3e-2}[dtype]
    for name in p_t:
        torch.testing.assert_close(p_n[name], p_t[name], rtol=tol, atol=tol)


def test_quantizer_native_gradients_match_closed_forms(backend):
    """Case 4 (Eq. 10) by hand: dQ/dalpha and dQ/dt per region, summed."""
    backend("native")
    q = QACQuantizer(4, alpha=2.0, timesteps=4.0).double()
    x = torch.tensor([-1.0, 0.3, 0.8, 1.9, 2.5, 3.0], dtype=torch.float64).requires_grad_(True)
    y = q(x)
    y.backward(torch.ones_like(y))
    inside = (x >= 0) & (x <= 2.0)
    err = (y - x).detach()[inside].sum()
    assert float(q.alpha.grad) == pytest.approx(float(err / 2.0 + (x > 2.0).sum()), abs=1e-12)
    assert float(q.t.grad) == pytest.approx(float(-err / 4.0), abs=1e-12)
    assert x.grad.tolist() == inside.double().tolist()


def test_kernel_backend_is_validated(monkeypatch):
    with pytest.raises(ValueError, match="unknown kernel backend"):
        kernels.set_backend("fast")
    monkeypatch.setitem(kernels._state, "backend", None)
    monkeypatch.setenv("QAC_KERNELS", "bogus")
    with pytest.raises(ValueError, match="QAC_KERNELS"):
        kernels.get_backend()


def test_tune_allocator_is_idempotent():
    assert tune_allocator() == tune_allocator()


def _mixed_qac(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build(arch, 10, activation="qac", case=4, timesteps=4, width=0.25).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, (_, q) in enumerate(quantizers(model)):
            q.t.fill_(float(1 + (3 * i) % 7))
            q.alpha.fill_(float(0.5 + torch.rand((), generator=g)))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return model.double()


def _spikes(snn, images):
    rec: list[torch.Tensor] = []
    hooks = [n.register_forward_hook(lambda m, i, o: rec.append(o)) for _, n in neurons(snn.body)]
    try:
        with torch.no_grad():
            logits = snn(images)
    finally:
        for h in hooks:
            h.remove()
    return logits, rec


@pytest.mark.parametrize("arch", ["resnet20", "vgg16", "resnet18"])
@pytest.mark.parametrize("policy", ["aver+aver", "repl+trunc", "aver+aver+aver"])
def test_fast_simulation_equals_per_step_reference(arch, policy):
    """Folded time, constant signals kept once, fused IF, micro-batches: the same spikes as the
    plain per-step simulation (float64, mixed per-layer T)."""
    ann = _mixed_qac(arch)
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1)).double()
    fast = to_snn(ann, policy, micro_batch=0)
    chunked = to_snn(ann, policy, micro_batch=2)
    reference = to_snn(ann, policy)
    reference.set_reference(True)
    logits_ref, spikes_ref = _spikes(reference, images)
    logits_fast, spikes_fast = _spikes(fast, images)
    assert len(spikes_ref) == len(spikes_fast) == len(list(quantizers(ann)))
    for a, b in zip(spikes_fast, spikes_ref, strict=True):
        assert torch.equal(a, b)
    assert sum(int(s.count_nonzero()) for s in spikes_ref) > 0
    torch.testing.assert_close(logits_fast, logits_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(chunked(images), logits_fast, rtol=0, atol=1e-12)


def test_reference_mode_really_runs_per_step():
    ann = _mixed_qac("resnet20")
    snn = to_snn(ann, "aver+aver+aver", micro_batch=0)
    calls: list[int] = []
    stem = snn.body.stem[1]  # the first conv (behind the image's alignment)
    stem.module.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        snn(torch.randn(2, 3, 32, 32, dtype=torch.float64))
        assert calls == [2]  # constant image: one call on the batch
        calls.clear()
        snn.set_reference(True)
        snn(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    T = next(n for _, n in neurons(snn.body)).timesteps
    assert calls == [2] * T  # one call per step


def test_auto_micro_batch_is_bounded_by_the_fold_budget():
    ann = _mixed_qac("resnet20").float()
    snn = to_snn(ann, "aver+aver")
    images = torch.randn(64, 3, 32, 32)
    snn.fold_budget_mib = 0.5
    size = snn.micro_batch_size(images)
    per_image = snn._sample_bytes[(3, 32, 32)]
    assert 1 <= size < 64 and size * per_image <= 0.5 * 2**20 < (size + 1) * per_image
    snn.micro_batch = 0
    assert snn.micro_batch_size(images) == 64
    with pytest.raises(ValueError, match="micro_batch"):
        to_snn(ann, "aver+aver", micro_batch=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("T", [2, 5])
def test_time_mean_native_equals_torch(backend, dtype, channels_last, T):
    from qac.align import time_mean

    x = _current(T, 4, dtype, channels_last, seed=T)
    backend("torch")
    ref = time_mean(x)
    backend("native")
    out = time_mean(x)
    assert out.shape == (1, *x.shape[1:]) and out.stride() == ref.stride()
    assert torch.equal(out, ref)
    torch.testing.assert_close(out, x.mean(dim=0, keepdim=True))


# -- NaN / Inf, any layout, gradient sums (the guarantees of qac.kernels' docstring) -------------

IMPLS = ("torch", "native")
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16}


def _assert_bitwise(a: torch.Tensor, b: torch.Tensor) -> None:
    """Same shape, dtype and bits (signed zeros included), NaN at the same elements (a NaN's
    payload and sign are not compared: PyTorch's own kernels differ there between vector and
    scalar code)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    nan = a.isnan()
    assert torch.equal(nan, b.isnan())
    bits = _BITS[a.dtype]
    assert torch.equal(a.masked_fill(nan, 0).view(bits), b.masked_fill(nan, 0).view(bits))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_if_native_propagates_nan_and_inf_as_torch(backend, dtype):
    current = _current(4, 5, dtype, True).clone()
    current[1, 0, 0] = math.nan  # a whole plane of NaN, at step 1
    current[0, 1, 1, 2, 3] = -math.nan
    current[0, 2, 2] = float("inf")
    current[2, 2, 3] = float("inf")
    current[3, 2, 3] = -float("inf")  # inf - inf: NaN from step 3 on
    current[1, 3, 4] = -float("inf")
    neuron = IFNeuron(4, 0.75)
    outs = {}
    for name in ("torch", "native"):
        backend(name)
        with torch.no_grad():
            outs[name] = neuron(current)
    _assert_bitwise(outs["native"], outs["torch"])
    out = outs["native"]
    assert not out[0, 0, 0].isnan().any() and out[1:, 0, 0].isnan().all()  # NaN at every step
    assert out[:, 2, 2].eq(0.75).all() and out[3, 2, 3].isnan().all()


def _dyadic(shape: tuple[int, ...], seed: int, span: int = 96, scale: float = 32.0):
    """Values k/scale (|k| < span): exact in bfloat16, and their sums exact in float64."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-span, span, shape, generator=g).double() / scale


def _quantizer_run(backend, name, dtype, x0, grad, make=lambda: QACQuantizer(4, 2.5, 5.0)):
    backend(name)
    q = make().to(dtype)
    x = x0.detach().clone().requires_grad_(True)
    y = q(x)
    y.backward(grad)
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in q.named_parameters()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("special", ["nan", "inf"])
def test_quantizer_native_equals_torch_on_nan_and_inf(backend, dtype, special):
    x0 = _dyadic((4, 8, 7, 7), 5).to(dtype).contiguous(memory_format=torch.channels_last)
    grad = _dyadic(x0.shape, 6, span=64, scale=64.0).to(dtype)
    if special == "nan":
        values = torch.tensor([math.nan, 1.0, -math.nan], dtype=dtype)
    else:
        values = torch.tensor([math.inf, -1e30, -math.inf], dtype=dtype)
    x0[0, :3, 0, 0] = values
    runs = {name: _quantizer_run(backend, name, dtype, x0, grad) for name in ("torch", "native")}
    (y_t, gx_t, p_t), (y_n, gx_n, p_n) = runs["torch"], runs["native"]
    _assert_bitwise(y_n, y_t)
    _assert_bitwise(gx_n, gx_t)
    for name in ("alpha", "t"):  # the float64 sums of these dyadic terms are exact
        _assert_bitwise(p_n[name], p_t[name])
    if special == "nan":  # NaN propagates to the output and the parameters; dQ/dx passes
        assert y_n[0, 0, 0, 0].isnan() and p_n["alpha"].isnan() and p_n["t"].isnan()
        assert torch.equal(gx_n[0, 0, 0, 0], grad[0, 0, 0, 0])
        return
    # +inf is above alpha (Q = alpha, dQ/dalpha = 1), -inf below (Q = 0, no gradient)
    assert y_n[0, :3, 0, 0].tolist() == [2.5, 0.0, 0.0] and gx_n[0, :3, 0, 0].eq(0).all()
    xd, gd = x0.double(), grad.double()
    inside = (xd > 0) & (xd < 2.5)
    err = (gd * (_eq5(xd, 2.5, 5.0) - xd))[inside].sum()
    tol = {"rel": 1e-2, "abs": 1e-2}
    assert float(p_n["t"]) == pytest.approx(float(-err / 5.0), **tol)
    assert float(p_n["alpha"]) == pytest.approx(float(err / 2.5 + gd[xd >= 2.5].sum()), **tol)


def _eq5(x: torch.Tensor, alpha: float, T: float) -> torch.Tensor:
    return alpha / T * torch.clamp(torch.floor(x * T / alpha + 0.5), 0, T)


_X_LAYOUTS = {
    "[1]": lambda v: v((1,)),
    "0-dim": lambda v: v(()),
    "[1,1,1,1]": lambda v: v((1, 1, 1, 1)),
    "[1,1,1,1] odd strides": lambda v: torch.as_strided(v((8,)), (1, 1, 1, 1), (7, 1, 3, 5)),
    "[0,3]": lambda v: v((0, 3)),
    "[2,0,3,3] channels_last": lambda v: v((2, 0, 3, 3)).contiguous(
        memory_format=torch.channels_last
    ),
    "[1,3,1,1] channels_last": lambda v: v((1, 3, 1, 1)).contiguous(
        memory_format=torch.channels_last
    ),
    "[2,3,1,5] channels_last": lambda v: v((2, 3, 1, 5)).contiguous(
        memory_format=torch.channels_last
    ),
    "transposed": lambda v: v((5, 7)).t(),
    "strided": lambda v: v((4, 10))[:, ::3],
    "permuted 3-D": lambda v: v((3, 4, 5)).permute(2, 0, 1),
    "expanded": lambda v: v((1, 6)).expand(4, 6),
    "large channels_last": lambda v: v((3, 40, 15, 15)).contiguous(
        memory_format=torch.channels_last
    ),
}
_GRAD_LAYOUTS = {
    "ones from .sum()": None,
    "contiguous": lambda v, s: v(s),
    "channels_last or transposed": lambda v, s: (
        v(s).contiguous(memory_format=torch.channels_last)
        if len(s) == 4
        else v(tuple(reversed(s))).permute(tuple(reversed(range(len(s)))))
    ),
    "strided": lambda v, s: v((*s, 2))[..., 1],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("grad_layout", list(_GRAD_LAYOUTS))
@pytest.mark.parametrize("x_layout", list(_X_LAYOUTS))
def test_quantizer_native_accepts_any_layout(backend, dtype, x_layout, grad_layout):
    """Forward and backward on any shape and layout (size-1 dimensions with any strides, empty,
    non-contiguous, overlapping): bitwise equal to the PyTorch path, parameter sums included
    (exact for these values)."""
    x0 = _X_LAYOUTS[x_layout](lambda s: _dyadic(s, 1).to(dtype))
    make_grad = _GRAD_LAYOUTS[grad_layout]
    grad = make_grad and make_grad(lambda s: _dyadic(s, 2).to(dtype) / 2, tuple(x0.shape))
    results = {}
    for name in ("torch", "native"):
        backend(name)
        q = QACQuantizer(4, 2.5, 5.0).to(dtype)
        x = x0.detach().requires_grad_(True)
        y = q(x)
        y.backward(grad) if grad is not None else y.sum().backward()
        results[name] = (y.detach(), x.grad, q.alpha.grad, q.t.grad)
    for a, b in zip(results["native"], results["torch"], strict=True):
        _assert_bitwise(a, b)
    assert results["native"][1].shape == x0.shape


_CURRENT_LAYOUTS = {  # [T_in, B, ...] for a neuron with T = 3
    "[3,1,1,1,1] odd strides": lambda v: torch.as_strided(
        v((8,)), (3, 1, 1, 1, 1), (2, 9, 1, 3, 5)
    ),
    "[1,1,3,1,1] channels_last": lambda v: (
        v((1, 3, 1, 1)).contiguous(memory_format=torch.channels_last).unsqueeze(0)
    ),
    "[3,2,3,1,4] channels_last steps": lambda v: (
        v((6, 3, 1, 4)).contiguous(memory_format=torch.channels_last).unflatten(0, (3, 2))
    ),
    "[3,0,3]": lambda v: v((3, 0, 3)),
    "[1,0,2,2,2]": lambda v: v((1, 0, 2, 2, 2)),
    "[3,1]": lambda v: v((3, 1)),
    "[1,4] constant": lambda v: v((1, 4)),
    "time-interleaved": lambda v: v((2, 3, 5)).permute(1, 0, 2),
    "transposed steps": lambda v: v((3, 5, 2)).transpose(1, 2),
    "expanded in time": lambda v: v((1, 2, 5)).expand(3, 2, 5),
    "strided batch": lambda v: v((3, 6, 4))[:, ::2],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", list(_CURRENT_LAYOUTS))
def test_if_native_accepts_any_layout(backend, dtype, layout):
    current = _CURRENT_LAYOUTS[layout](lambda s: _dyadic(s, 7, scale=48.0).to(dtype))
    neuron = IFNeuron(3, 0.75, v0=0.25)
    outs = {}
    for name in ("torch", "native"):
        backend(name)
        with torch.no_grad():
            outs[name] = neuron(current)
    assert outs["native"].shape == (3, *current.shape[1:])
    _assert_bitwise(outs["native"], outs["torch"])


def test_quantizer_parameter_gradients_are_float64_sums(backend):
    """float32, four kernel chunks, terms spanning ~40 binades (their float64 sum is not exact):
    both implementations give the float64-accumulated sum, so each is within 1 ulp of the
    exactly rounded sum (math.fsum) of the same float32 terms, and of the other."""
    g = torch.Generator().manual_seed(11)
    shape = (8, 16, 20, 20)
    x0 = (torch.randint(-(2**22), 2**22, shape, generator=g) * 2.0**-20).float()
    grad = (torch.randint(-(2**23), 2**23, shape, generator=g) * 2.0**-23).float()
    grad = grad * torch.exp2(-torch.randint(0, 16, shape, generator=g).float())  # wide range
    alpha, T = torch.tensor(2.5), torch.tensor(5.0)
    q = (x0 * (5.0 / 2.5)).add(0.5).floor().clamp(0, 5.0).mul(2.5 / 5.0)  # float32, as Eq. 5
    inside = (x0 > 0) & (x0 < 2.5)
    terms = torch.where(inside, grad * (q - x0), 0)  # the float32 terms both paths add
    err = torch.tensor(math.fsum(terms.double().flatten().tolist())).float()
    above = torch.tensor(math.fsum(grad[x0 >= 2.5].double().flatten().tolist())).float()
    exact = {"alpha": err / alpha + above, "t": -err / T}
    assert terms.abs().sum() < 2.0**10 * err.abs()  # float64 error << one float32 ulp
    got = {impl: _quantizer_run(backend, impl, torch.float32, x0, grad)[2] for impl in IMPLS}
    for name, want in exact.items():
        ulp = float(torch.nextafter(want.abs(), torch.tensor(math.inf)) - want.abs())
        for impl in IMPLS:
            assert abs(float(got[impl][name]) - float(want)) <= ulp, (impl, name)
        assert abs(float(got["native"][name]) - float(got["torch"][name])) <= ulp
