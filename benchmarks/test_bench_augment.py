"""pytest-benchmark micro-benchmarks of the CIFAR training augmentation (QCFS recipe):
``pytest benchmarks/test_bench_augment.py --benchmark-only``.

One batch of 200 CIFAR-shaped uint8 images (the paper preset's batch) per call: our batched
loader (augmentation off / crop+flip / full recipe) and our batched AutoAugment alone, next to
torchvision v2 applied image by image, and one QAC ResNet-20 training step for scale.  The
end-to-end comparison with ratios is ``python -m benchmarks --only augment``.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.augment import (
    LOADER_CONFIGS,
    cifar_images,
    loader_epoch,
    torchvision_batched,
    torchvision_per_image,
    train_step,
)
from qac.data import autoaugment_batch
from qac.runtime import tune_allocator

tune_allocator()

BATCH = 200
GROUP = f"CIFAR augmentation, one batch of {BATCH} uint8 images"


@pytest.fixture(scope="module")
def images():
    return cifar_images(BATCH)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("augment", list(LOADER_CONFIGS))
def test_loader_ours(benchmark, images, augment):
    benchmark(loader_epoch(images, BATCH, LOADER_CONFIGS[augment]))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("cutout", ["hand", "erasing"])
def test_torchvision_v2_per_image(benchmark, images, cutout):
    benchmark.pedantic(torchvision_per_image(images, BATCH, cutout), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group=GROUP)
def test_torchvision_v2_batched_not_the_recipe(benchmark, images):
    benchmark(torchvision_batched(images, BATCH))


@pytest.mark.benchmark(group="AutoAugment (CIFAR-10 policy) alone, one batch of 200")
def test_autoaugment_ours(benchmark, images):
    g = torch.Generator().manual_seed(0)
    benchmark(autoaugment_batch, images.images, g)


@pytest.mark.benchmark(group="AutoAugment (CIFAR-10 policy) alone, one batch of 200")
def test_autoaugment_torchvision_per_image(benchmark, images):
    from torchvision.transforms import v2

    aa = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    benchmark.pedantic(
        lambda: torch.stack([aa(img) for img in images.images]), rounds=5, warmup_rounds=1
    )


@pytest.mark.benchmark(group="QAC ResNet-20 (case 4) training step, batch 200")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_train_step(benchmark, dtype):
    benchmark.pedantic(train_step(BATCH, dtype, torch.device("cpu")), rounds=3, warmup_rounds=1)
