"""pytest-benchmark micro-benchmarks: ``pytest benchmarks/ --benchmark-only``.

Not part of the test suite (``pytest`` alone collects ``tests/`` only). Each benchmark pairs our
implementation with its reference in the same group so the table shows them side by side.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.models import benchmark_ann, benchmark_images
from benchmarks.spikingjelly_net import SpikingJellyRunner, spikingjelly_available, spikingjelly_snn
from qac import kernels
from qac.convert import to_snn
from qac.neuron import IFNeuron
from qac.quant import QACQuantizer
from qac.runtime import tune_allocator

tune_allocator()


@pytest.fixture(params=["native", "torch"])
def backend(request):
    kernels.set_backend(request.param)
    yield request.param
    kernels.set_backend("auto")


@pytest.mark.benchmark(group="IF neuron, T=4, 128x16x32x32")
def test_if_neuron(benchmark, backend):
    current = torch.randn(4 * 128, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    current = current.unflatten(0, (4, 128))
    neuron = IFNeuron(4, 1.0)
    with torch.no_grad():
        benchmark(neuron, current)


@pytest.mark.benchmark(group="QAC quantizer forward+backward, 128x16x32x32")
def test_quantizer_step(benchmark, backend):
    q = QACQuantizer(4, alpha=2.0, timesteps=4.0)
    x = torch.randn(128, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad = torch.randn_like(x)

    def step() -> None:
        q(x).backward(grad)

    benchmark(step)


@pytest.mark.benchmark(group="ReLU forward+backward, 128x16x32x32")
def test_relu_step(benchmark):
    x = torch.randn(128, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad = torch.randn_like(x)
    benchmark(lambda: torch.relu(x).backward(grad))


@pytest.fixture(scope="module")
def resnet20_qcfs():
    images = benchmark_images(64)
    return benchmark_ann("resnet20", images, activation="qcfs", timesteps=4), images


@pytest.mark.benchmark(group="ResNet-20 SNN, T=4, batch 64")
@pytest.mark.parametrize("policy", ["qcfs", "qcfs+aver"])
def test_snn_ours(benchmark, resnet20_qcfs, policy):
    ann, images = resnet20_qcfs
    snn = to_snn(ann, policy, timesteps=4)
    with torch.no_grad():
        benchmark(snn, images)


@pytest.mark.benchmark(group="ResNet-20 SNN, T=4, batch 64")
@pytest.mark.skipif(not spikingjelly_available(), reason="pip install -e .[bench]")
@pytest.mark.parametrize("mode", ["s", "m"])
def test_snn_spikingjelly(benchmark, resnet20_qcfs, mode):
    ann, images = resnet20_qcfs
    runner = SpikingJellyRunner(spikingjelly_snn(ann, step_mode=mode), 4, mode)
    benchmark(runner, images)
