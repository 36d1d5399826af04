"""Architectures: activations, average pooling, torchvision equivalence, registry errors."""

import pytest
import torch
import torchvision
from torch import nn

from qac.models import architecture_names, build
from qac.quant import QACQuantizer, QCFSQuantizer

# activation layers: VGG-16 13 conv + 2 fc; ResNets: stem + 2 per basic block
N_ACTS = {
    "vgg16": 15,
    "resnet18": 17,
    "resnet20": 19,
    "vgg16_imagenet": 15,
    "resnet34_imagenet": 33,
}
INPUT = {"vgg16": 32, "resnet18": 32, "resnet20": 32, "vgg16_imagenet": 64, "resnet34_imagenet": 64}


def test_registry_lists_the_papers_architectures():
    assert set(architecture_names()) >= set(N_ACTS)


@pytest.mark.parametrize("arch", sorted(N_ACTS))
@pytest.mark.parametrize("activation", ["relu", "qac", "qcfs"])
def test_build_with_any_activation(arch, activation):
    model = build(arch, 7, activation, width=0.125)
    kind = {"relu": nn.ReLU, "qac": QACQuantizer, "qcfs": QCFSQuantizer}[activation]
    acts = [m for m in model.modules() if isinstance(m, kind)]
    assert len(acts) == N_ACTS[arch]
    assert len({id(a) for a in acts}) == len(acts)  # one module per layer, none shared
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())  # Algorithm 1 l. 5-6
    x = torch.randn(2, 3, INPUT[arch], INPUT[arch])
    assert model(x).shape == (2, 7)


def test_state_dict_has_no_duplicate_modules():
    model = build("resnet20", 10, "qac")
    keys = list(model.state_dict())
    assert len(keys) == len(set(keys))
    assert sum(k.endswith(".t") for k in keys) == 19


def test_resnet20_is_the_narrow_cifar_net():
    model = build("resnet20", 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64]
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < n_params < 0.28e6  # He et al. report 0.27M


def _shapes(model):
    return sorted(tuple(p.shape) for p in model.parameters())


def test_imagenet_vgg16_matches_torchvision_vgg16_bn_layer_for_layer():
    ours = build("vgg16_imagenet", 1000)
    theirs = torchvision.models.vgg16_bn(weights=None)
    assert _shapes(ours) == _shapes(theirs)


def test_imagenet_resnet34_matches_torchvision_resnet34_layer_for_layer():
    ours = build("resnet34_imagenet", 1000)
    theirs = torchvision.models.resnet34(weights=None)
    assert _shapes(ours) == _shapes(theirs)
    pools = [m for m in ours.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 1 and pools[0].kernel_size == 3


def test_qac_options_reach_every_quantizer():
    model = build("vgg16", 10, "qac", case=2, alpha=3.0, timesteps=8)
    qs = [m for m in model.modules() if isinstance(m, QACQuantizer)]
    assert all(q.case == 2 and q.T == 8 and q.threshold == pytest.approx(3.0) for q in qs)
    model = build("resnet20", 10, {"name": "qcfs", "levels": 4})
    assert all(m.levels == 4 for m in model.modules() if isinstance(m, QCFSQuantizer))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        build("resnet50", 10)
    with pytest.raises(ValueError, match="unknown activation"):
        build("vgg16", 10, "gelu")
    with pytest.raises(ValueError, match="unknown QAC case"):
        build("vgg16", 10, "qac", case=7)
    with pytest.raises(ValueError, match="num_classes"):
        build("vgg16", 0)
