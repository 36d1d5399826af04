"""ANN -> mixed-timestep SNN conversion: the exactness property and the conversion options."""

import pytest
import torch
from torch import nn

from qac.align import TimeAlign
from qac.convert import conversion_error, neurons, quantizers, to_snn
from qac.models import build
from qac.quant import InfiniteTimestepsError

INPUT = {"vgg16": 32, "resnet18": 32, "resnet20": 32, "vgg16_imagenet": 64, "resnet34_imagenet": 64}


def randomize(model, gen, *, t_max=8):
    """Random weights, BN statistics and per-layer alpha/T, so that every layer is non-trivial."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.3 + 0.3)
        for _, q in quantizers(model):
            if hasattr(q, "t"):
                q.t.fill_(float(torch.randint(1, t_max + 1, (), generator=gen)))
                q.alpha.fill_(0.5 + 1.5 * float(torch.rand((), generator=gen)))
            else:
                q.theta.fill_(0.5 + 1.5 * float(torch.rand((), generator=gen)))
    return model.eval()


def ann_activations(model, x):
    acts = {}
    hooks = [
        q.register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o))
        for n, q in quantizers(model)
    ]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits, acts


@pytest.mark.parametrize("arch", sorted(INPUT))
def test_snn_with_averaging_everywhere_reproduces_the_quantized_ann(arch):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(hash(arch) % 1000)
    model = build(arch, 10, "qac", case=4, width=0.25).double()
    randomize(model, gen)
    Ts = [q.T for _, q in quantizers(model)]
    assert len(set(Ts)) > 2  # genuinely mixed timesteps
    size = INPUT[arch]
    x = torch.randn(4, 3, size, size, generator=gen, dtype=torch.float64)
    logits, acts = ann_activations(model, x)
    # non-trivial: every layer has both silent and active units, several distinct levels overall
    for name, a in acts.items():
        frac = float((a > 0).double().mean())
        assert 0.01 < frac < 0.999, (name, frac)
    assert logits.abs().max() > 1e-3
    snn = to_snn(model, policy="aver+aver+aver", v0="half")
    with torch.no_grad():
        out = snn(x)
    assert (out - logits).abs().max() <= 1e-9
    errors = conversion_error(model, snn, x)
    assert max(errors.values()) <= 1e-9
    assert set(errors) == set(acts) | {"logits"}


@pytest.mark.parametrize("arch", ["resnet20", "vgg16"])
@pytest.mark.parametrize("L", [1, 2, 4, 8])
def test_qcfs_snn_at_T_equal_L_reproduces_the_qcfs_ann(arch, L):
    gen = torch.Generator().manual_seed(L)
    model = randomize(build(arch, 10, "qcfs", levels=L, width=0.25).double(), gen)
    x = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    snn = to_snn(model, policy="qcfs+aver", timesteps=L)
    with torch.no_grad():
        assert (snn(x) - model(x)).abs().max() <= 1e-9


def test_other_policies_are_not_exact_and_the_report_shows_where():
    gen = torch.Generator().manual_seed(3)
    model = randomize(build("resnet20", 10, "qac", width=0.5).double(), gen)
    x = torch.randn(4, 3, 32, 32, generator=gen, dtype=torch.float64)
    errors = conversion_error(model, to_snn(model, policy="repl+trunc"), x)
    assert errors["logits"] > 1e-3
    first = next(iter(errors))
    assert errors[first] <= 1e-9  # the first layer sees the constant analog input: exact


def test_equal_policy_none_propagates_spike_trains():
    model = randomize(
        build("resnet20", 10, "qcfs", levels=4, width=0.25).double(),
        torch.Generator().manual_seed(5),
    )
    snn = to_snn(model, policy="qcfs", timesteps=6)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        steps = snn.forward_steps(x)
    assert steps.shape == (6, 2, 10)


def test_uniform_T_without_alignment_is_causal_so_one_run_gives_every_T():
    # The running average at step t equals a separate run with T = t (QCFS T-sweeps, Table 8).
    gen = torch.Generator().manual_seed(11)
    model = randomize(build("vgg16", 10, "qcfs", levels=4, width=0.25).double(), gen)
    x = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        steps = to_snn(model, policy="qcfs", timesteps=8).forward_steps(x)
        running = steps.cumsum(0) / torch.arange(1, 9, dtype=torch.float64).view(8, 1, 1)
        for T in [1, 3, 8]:
            separate = to_snn(model, policy="qcfs", timesteps=T)(x)
            assert torch.allclose(running[T - 1], separate, rtol=0, atol=1e-12)


def test_temporal_scale_multiplies_every_layers_T():
    gen = torch.Generator().manual_seed(2)
    model = randomize(build("resnet20", 10, "qac", width=0.25), gen)
    base = [q.T for _, q in quantizers(model)]
    for k in [1, 2, 3]:
        snn = to_snn(model, temporal_scale=k)
        assert [n.timesteps for _, n in neurons(snn.body)] == [k * T for T in base]
        aligns = [m for m in snn.modules() if isinstance(m, TimeAlign) and m.target is not None]
        assert all(a.T_out == a.target.timesteps for a in aligns)


def test_thresholds_and_names_carry_over_and_the_ann_is_untouched():
    model = randomize(build("vgg16", 10, "qac", width=0.25), torch.Generator().manual_seed(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snn = to_snn(model, v0="zero")
    qs, ns = dict(quantizers(model)), dict(neurons(snn.body))
    assert list(qs) == list(ns)
    for name, q in qs.items():
        assert float(ns[name].v_th) == pytest.approx(q.threshold)
        assert float(ns[name].v0) == 0.0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(list(quantizers(model))) == 15


def test_conversion_errors():
    with pytest.raises(ValueError, match="non-quantized activations"):
        to_snn(build("resnet20", 10, "relu"))
    model = build("resnet20", 10, "qac", case=3)
    with torch.no_grad():
        next(q for _, q in quantizers(model)).d.fill_(0.0)
    with pytest.raises(InfiniteTimestepsError):
        to_snn(model)
    with pytest.raises(ValueError, match="unknown alignment policy"):
        to_snn(build("resnet20", 10, "qac"), policy="nearest")
    with pytest.raises(ValueError, match="temporal_scale"):
        to_snn(build("resnet20", 10, "qac"), temporal_scale=0)
