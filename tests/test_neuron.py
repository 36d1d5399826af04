"""Soft-reset IF neuron: Eqs. 1-3 against a plain loop, constant-input spike counts, surrogates."""

import math

import pytest
import torch

from qac.neuron import IFNeuron, heaviside


def python_loop(current, v_th, v0):
    """Eqs. 1-3 for one neuron, scalar by scalar."""
    v, out = v0, []
    for i in current:
        m = v + i
        s = 1.0 if m >= v_th else 0.0
        v = m - v_th * s
        out.append(v_th * s)
    return out


def test_matches_plain_python_loop_per_channel_state():
    gen = torch.Generator().manual_seed(0)
    T, B, C = 7, 3, 4
    current = torch.randn(T, B, C, generator=gen, dtype=torch.float64)
    v_th = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
    v0 = torch.rand(C, generator=gen, dtype=torch.float64) - 0.2
    neuron = IFNeuron(T, v_th=v_th, v0=v0)
    out = neuron(current)
    assert out.shape == (T, B, C)
    for b in range(B):
        for c in range(C):
            want = python_loop(current[:, b, c].tolist(), float(v_th[c]), float(v0[c]))
            assert out[:, b, c].tolist() == want


def test_constant_input_spike_count_closed_form():
    # v0 = v_th/2: a constant current I for T steps gives clip(floor(T*I/v_th + 1/2), 0, T) spikes.
    gen = torch.Generator().manual_seed(1)
    for T in [1, 2, 3, 4, 5, 8, 13, 16]:
        v_th = 0.3 + torch.rand((), generator=gen, dtype=torch.float64)
        current = (torch.rand(1, 5000, generator=gen, dtype=torch.float64) * 3 - 1) * v_th
        neuron = IFNeuron(T, v_th=v_th)
        count = (neuron(current) / v_th).sum(0)
        want = torch.clamp(torch.floor(T * current[0] / v_th + 0.5), 0, T)
        assert torch.equal(count, want), T


def test_constant_input_as_one_step_equals_repeated_input():
    current = torch.randn(1, 2, 3, 5, 5, dtype=torch.float64)
    neuron = IFNeuron(6, v_th=0.7).double()
    assert torch.equal(neuron(current), neuron(current.expand(6, -1, -1, -1, -1)))


def test_v0_options_and_per_neuron_state():
    assert float(IFNeuron(4, v_th=2.0).v0) == 1.0
    assert float(IFNeuron(4, v_th=2.0, v0="zero").v0) == 0.0
    per_neuron = torch.full((3, 2, 2), 0.25, dtype=torch.float64)
    neuron = IFNeuron(2, v_th=torch.ones(3, 2, 2, dtype=torch.float64), v0=per_neuron)
    x = torch.full((2, 1, 3, 2, 2), 0.5, dtype=torch.float64)
    # m(1) = 0.75 < 1, m(2) = 1.25 >= 1
    assert neuron(x)[:, 0, 0, 0, 0].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("surrogate", ["rect", "triangle"])
def test_surrogate_gradient_shapes(surrogate):
    u = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64, requires_grad=True)
    s = heaviside(u, width=1.0, surrogate=surrogate)
    assert s.tolist() == (u >= 0).double().tolist()
    s.sum().backward()
    if surrogate == "rect":
        want = (u.detach().abs() < 0.5).double()
    else:
        want = torch.clamp(1 - u.detach().abs(), min=0)
    assert torch.allclose(u.grad, want)


def test_gradients_reach_v0_and_threshold():
    neuron = IFNeuron(3, v_th=1.0, v0=0.5, learn=True).double()
    assert {n for n, _ in neuron.named_parameters()} == {"v0", "v_th"}
    x = torch.full((1, 4, 2), 0.4, dtype=torch.float64)
    neuron(x).sum().backward()
    assert neuron.v0.grad is not None and float(neuron.v0.grad.abs()) > 0
    assert neuron.v_th.grad is not None
    neuron.set_learnable(False)
    assert not list(neuron.parameters()) and float(neuron.v0) == 0.5


def test_expand_v0_per_channel():
    neuron = IFNeuron(2, v_th=1.0, learn=True)
    neuron.expand_v0(5)
    assert neuron.v0.shape == (5,) and isinstance(neuron.v0, torch.nn.Parameter)
    out = neuron(torch.rand(2, 3, 5, 4, 4))
    assert out.shape == (2, 3, 5, 4, 4)


def test_records_spike_counts():
    neuron = IFNeuron(4, v_th=1.0, record=True)
    x = torch.full((1, 2, 10), 0.5)
    out = neuron(x)
    stats = neuron.stats()
    assert stats["spikes"] == float(out.sum()) == 2 * 10 * 2
    assert stats["firing_rate"] == pytest.approx(0.5)
    assert stats["spikes_per_sample"] == 20
    neuron.reset_stats()
    assert math.isnan(neuron.stats()["firing_rate"])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"timesteps": 0, "v_th": 1.0}, ValueError, "integer >= 1"),
        ({"timesteps": 2.5, "v_th": 1.0}, ValueError, "integer >= 1"),
        ({"timesteps": 2, "v_th": -1.0}, ValueError, "threshold v_th must be positive"),
        ({"timesteps": 2, "v_th": 0.0}, ValueError, "threshold v_th must be positive"),
        ({"timesteps": 2, "v_th": 1.0, "v0": "middle"}, ValueError, "unknown v0"),
        ({"timesteps": 2, "v_th": 1.0, "surrogate": "sigmoid"}, ValueError, "unknown surrogate"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        IFNeuron(**kwargs)


def test_misaligned_input_is_an_error():
    with pytest.raises(ValueError, match="align the input"):
        IFNeuron(4, v_th=1.0)(torch.zeros(3, 1, 2))


def test_inference_path_equals_autograd_path_at_threshold_ties():
    # Values exactly at, just below and just above the threshold, in float32 and float64.
    for dtype in (torch.float32, torch.float64):
        v_th = torch.tensor([1.0, 0.3, 2.0**-3, 1.7], dtype=dtype)
        below = torch.nextafter(v_th, torch.zeros_like(v_th))
        above = torch.nextafter(v_th, torch.full_like(v_th, 10.0))
        current = torch.stack([v_th, below, above, -v_th, 3 * v_th]).reshape(5, 1, 4)
        neuron = IFNeuron(1, v_th=v_th, v0="zero")
        fast = neuron(current.reshape(1, 5, 4))
        slow = neuron._simulate_autograd(
            current.reshape(1, 5, 4), torch.zeros(4, dtype=dtype), v_th, v_th
        )
        assert torch.equal(fast, slow)
        assert fast[0, :, 0].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(6, 64, 4, generator=gen, dtype=dtype) * 2 - 0.5
        n6 = IFNeuron(6, v_th=v_th)
        assert torch.equal(n6(x), n6._simulate_autograd(x, v_th / 2, v_th, v_th))
