"""Fused kernels and the fast simulator against their plain references (bitwise where exact)."""

from __future__ import annotations

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
    err = (y - x)[inside].sum()
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
