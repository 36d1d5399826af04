"""Any network: prepare_qat (fx) + to_snn on torchvision / timm models and functional code."""

from collections import Counter

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from test_convert import ann_activations, randomize
from torch import fx, nn

from qac.align import TimeAlign
from qac.convert import conversion_error, quantizers, to_snn
from qac.models import build
from qac.prepare import UnsupportedOperationError, prepare_qat
from qac.quant import QACQuantizer


class Branchy(nn.Module):
    """Functional ReLUs and pooling, a concatenation, a residual sum, a view from sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.left = nn.Conv2d(8, 6, 1)
        self.right = nn.Conv2d(8, 6, 3, padding=1)
        self.mix = nn.Conv2d(12, 8, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d(2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)), inplace=True)
        x = F.max_pool2d(x, 2)
        y = torch.cat([torch.relu(self.left(x)), self.right(x).relu()], dim=1)
        y = self.pool(F.relu6(self.mix(y) * 0.5 + x))
        y = F.dropout(y, 0.5, self.training)
        channels, height, width = y.shape[1:]
        return self.fc(y.view(y.size(0), channels * height * width))


NETWORKS = {  # factory (random init: pretrained=False), input size
    "torchvision_resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 64),
    "timm_resnet10t": (
        lambda: timm.create_model("resnet10t", num_classes=10, pretrained=False),
        64,
    ),
    "functional": (Branchy, 16),
    "qac_resnet20_with_relu": (lambda: build("resnet20", 10, width=0.25), 32),  # own TimeAligns
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_prepared_network_converts_exactly_under_averaging(name):
    factory, size = NETWORKS[name]
    gen = torch.Generator().manual_seed(7)
    model = randomize(prepare_qat(factory(), "qac", case=4).double(), gen)
    assert len({q.T for _, q in quantizers(model)}) > 2  # genuinely mixed timesteps
    x = torch.randn(2, 3, size, size, generator=gen, dtype=torch.float64)
    logits, acts = ann_activations(model, x)
    for layer, a in acts.items():  # every layer is non-trivial
        assert 0.01 < float((a > 0).double().mean()) < 0.999, layer
    snn = to_snn(model, policy="aver+aver+aver")
    with torch.no_grad():
        assert (snn(x) - logits).abs().max() <= 1e-9
    errors = conversion_error(model, snn, x)
    assert set(errors) == set(acts) | {"logits"} and max(errors.values()) <= 1e-9
    main = to_snn(model, policy="aver+aver")
    reference = to_snn(model, policy="aver+aver")
    reference.set_reference(True)  # every step materialised, stateless layers called per step
    with torch.no_grad():
        out = main(x)
        torch.testing.assert_close(reference(x), out, rtol=0, atol=1e-12)
    assert out.shape == logits.shape and torch.isfinite(out).all()


def test_every_relu_call_site_gets_its_own_quantizer_and_max_pooling_becomes_average():
    net = torchvision.models.resnet18(num_classes=10)
    model = prepare_qat(net, "qcfs", levels=4)
    names = [n for n, _ in quantizers(model)]
    assert len(names) == 17 and len(set(map(id, dict(quantizers(model)).values()))) == 17
    assert names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu_1"]  # forward order
    assert not any(isinstance(m, nn.ReLU | nn.MaxPool2d) for m in model.modules())
    pool = model.maxpool
    assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride) == (3, 2)
    assert isinstance(net.relu, nn.ReLU) and isinstance(net.maxpool, nn.MaxPool2d)  # untouched
    # both paths into a residual sum are aligned to the neuron after the sum (two points)
    aligned = Counter(id(m.target) for m in model.modules() if isinstance(m, TimeAlign))
    for name, q in quantizers(model):
        assert aligned[id(q)] == (2 if name.endswith("relu_1") else 1), name


def test_functional_operations_are_replaced():
    model = prepare_qat(Branchy(), "qac", case=4, alpha=2.0, timesteps=4)
    assert len(list(quantizers(model))) == 4  # F.relu, torch.relu, Tensor.relu, F.relu6
    targets = {n.target for n in model.graph.nodes if n.op != "call_module"}
    assert not targets & {F.relu, torch.relu, "relu", F.relu6, F.max_pool2d, F.dropout}
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and model.pool.output_size == 2
    assert any(isinstance(m, nn.AvgPool2d) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) for m in model.modules())  # follows train/eval
    x = torch.randn(2, 3, 16, 16)
    model(x).square().sum().backward()  # quantization-aware training reaches every alpha and T
    assert all(q.alpha.grad is not None and q.t.grad is not None for _, q in quantizers(model))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))


class _Gated(nn.Module):
    def __init__(self, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = act

    def forward(self, x):
        y = self.conv(x)
        if self.act == "gelu":
            return F.gelu(y)
        return y * torch.relu(y)


class _Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.block = inner

    def forward(self, x):
        return self.block(x)


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU()), r"GELU at node '_1' \(module '1'\)"),
        (_Wrapper(_Gated("gelu")), r"gelu at node 'gelu' \(module 'block'\)"),
        (_Wrapper(_Gated("product")), r"mul at node 'mul' .*multiplies two activations"),
        (nn.Sequential(nn.Conv2d(3, 4, 1), nn.SiLU()), "SiLU at node"),
        (nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4)), "LayerNorm at node"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(-1)), "Softmax at node"),
    ],
)
def test_unsupported_operations_are_refused_before_training(model, message):
    with pytest.raises(UnsupportedOperationError, match=message):
        prepare_qat(model)


def test_to_snn_traces_unprepared_models_and_refuses_max_pooling():
    net = torchvision.models.resnet18(num_classes=10)
    for module in list(net.modules()):
        for child, sub in list(module.named_children()):
            if isinstance(sub, nn.ReLU):  # one quantizer shared by a block's two ReLUs
                setattr(module, child, QACQuantizer(4, alpha=2.0, timesteps=4))
    with pytest.raises(UnsupportedOperationError, match="MaxPool2d at node 'maxpool'"):
        to_snn(net.eval())
    net.maxpool = nn.AvgPool2d(3, 2, 1)
    snn = to_snn(net.eval().double(), policy="aver+aver+aver")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert (snn(x) - net(x)).abs().max() <= 1e-9
    assert isinstance(snn.body, fx.GraphModule)


def test_prepare_qat_rejects_a_relu_quantizer():
    with pytest.raises(ValueError, match="QAC or QCFS"):
        prepare_qat(Branchy(), "relu")
