"""Statistics: average T and bits, spike counts, firing rates, synaptic operations."""

import math

import pytest
import torch

from qac.convert import neurons, quantizers, to_snn
from qac.models import build
from qac.stats import average_bits, average_timesteps, collect, layer_timesteps


def model_with_timesteps(Ts):
    model = build("resnet20", 10, "qac", width=0.25)
    qs = [q for _, q in quantizers(model)]
    with torch.no_grad():
        for q, T in zip(qs, Ts, strict=False):
            q.t.fill_(T)
    return model.eval()


def test_average_timesteps_and_bits():
    Ts = [1, 2, 4, 8] * 4 + [16, 16, 16]
    model = model_with_timesteps(Ts)
    assert [T for _, T in layer_timesteps(model)] == Ts
    assert average_timesteps(model) == pytest.approx(sum(Ts) / len(Ts))
    assert average_bits(model) == pytest.approx(sum(math.log2(T) for T in Ts) / len(Ts))
    snn = to_snn(model, temporal_scale=2)
    assert average_timesteps(snn) == pytest.approx(2 * sum(Ts) / len(Ts))


def test_case3_infinite_average_is_reported_as_inf():
    model = build("resnet20", 10, "qac", case=3)
    with torch.no_grad():
        next(q for _, q in quantizers(model)).d.fill_(0.0)
    assert math.isinf(average_timesteps(model)) and math.isinf(average_bits(model))


def test_spike_counts_rates_and_synaptic_ops():
    torch.manual_seed(0)
    model = model_with_timesteps([2, 4] * 10)
    snn = to_snn(model, policy="repl+trunc")
    x = torch.randn(3, 3, 32, 32)
    hooks, spikes = [], {}
    for name, n in neurons(snn.body):
        hooks.append(
            n.register_forward_hook(
                lambda m, i, o, name=name: spikes.__setitem__(
                    name, spikes.get(name, 0.0) + float((o != 0).sum())
                )
            )
        )
    stats = collect(snn, x)
    for h in hooks:
        h.remove()
    rows = {r["layer"]: r for r in stats["spikes"]}
    assert set(rows) == set(spikes)
    for name, row in rows.items():
        assert row["spikes"] == spikes[name]
        assert 0 <= row["firing_rate"] <= 1
    ops = stats["synaptic_ops"]
    assert ops[0]["macs_per_sample"] > 0 and ops[0]["acs_per_sample"] == 0  # analog image input
    later = [r for r in ops[1:] if r["kind"] == "Conv2d"]
    assert all(r["acs_per_sample"] > 0 for r in later[:3])  # spike inputs: accumulates
    # recording is switched off again afterwards
    assert all(not n.record for _, n in neurons(snn.body))
