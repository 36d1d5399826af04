"""Cost of the CIFAR training augmentation (QCFS recipe) against a training step.

The recipe: RandomCrop(32, padding 4) + horizontal flip + AutoAugment (CIFAR-10 policy) +
normalisation + Cutout (one 16 px hole).  Candidates, all on the same uint8 CIFAR-shaped images
and timed per batch in interleaved rounds (:func:`benchmarks.timing.interleaved`):

* ``ours``: one batch of :class:`qac.data.BatchLoader` with augmentation off, crop+flip, and the
  full recipe (its batched AutoAugment draws a sub-policy per image);
* ``torchvision v2, per image``: ``v2.RandomCrop`` / ``v2.RandomHorizontalFlip`` /
  ``v2.AutoAugment(CIFAR10)`` / ``v2.ToDtype`` + ``v2.Normalize`` / Cutout, applied image by
  image in a Python loop over the batch (one process, no DataLoader workers); Cutout is either
  QCFS's hole (centre uniform over the image, clipped at the border; a small hand op) or
  ``v2.RandomErasing`` with a fixed 16x16 box (the closest library op; its box always lies inside
  the image, so its distribution differs from Cutout's);
* ``torchvision v2, batched``: the same v2 transforms called once on the whole uint8 batch.
  Not the recipe: v2's AutoAugment draws ONE sub-policy for all images of a call (checked here:
  ``independent_draws``), and crop/flip are shared by the batch too;
* ``train step``: forward + backward + SGD of the QAC ResNet-20 (case 4, alpha 4, T 4),
  channels_last, fp32 and bf16 autocast, as :mod:`qac.train` runs it.

Each row gives its time per batch and its ratio to the fp32 and bf16 training step; the
torchvision rows also give their time relative to ours (full recipe).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmarks.timing import interleaved
from qac.data import AugmentConfig, BatchLoader, TensorImageDataset, autoaugment_batch, load_dataset
from qac.models import build

__all__ = [
    "QAC_CASE4",
    "Cutout",
    "augment",
    "cifar_images",
    "independent_draws",
    "loader_epoch",
    "torchvision_batched",
    "torchvision_per_image",
    "train_step",
]

QAC_CASE4 = {"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 4}
CUTOUT = 16
FULL = AugmentConfig(crop_padding=4, flip=True, autoaugment=True, cutout=CUTOUT)
LOADER_CONFIGS = {
    "none": AugmentConfig.none(),
    "crop+flip": AugmentConfig(crop_padding=4, flip=True),
    "full recipe": FULL,
}


RECIPE = (
    "ours: full recipe",
    "torchvision v2 per image (Cutout)",
    "torchvision v2 per image (RandomErasing)",
)


def cifar_images(n: int, seed: int = 0) -> TensorImageDataset:
    """``n`` synthetic CIFAR-10-shaped uint8 training images (in memory)."""
    ds = load_dataset("synthetic-cifar10", "train", train_size=n, test_size=1, seed=seed)
    assert isinstance(ds, TensorImageDataset)
    return ds


def loader_epoch(
    ds: TensorImageDataset,
    batch: int,
    augment: AugmentConfig,
    device: torch.device | str = "cpu",
) -> Callable[[], int]:
    """One call = one epoch of our training loader over ``ds`` (gather, augment on ``device``,
    normalise, cutout, channels_last); returns the number of batches."""
    loader = BatchLoader(ds, batch, train=True, augment=augment, device=device, channels_last=True)

    def call() -> int:
        return sum(1 for _ in loader)  # every iter() is a new epoch: fresh order and draws

    return call


class Cutout(nn.Module):
    """QCFS's Cutout on one normalised image: zero a ``length`` square at a uniform centre."""

    def __init__(self, length: int = CUTOUT) -> None:
        super().__init__()
        self.length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
        half = self.length // 2
        y1, y2 = max(0, cy - half), min(h, cy + half)
        x1, x2 = max(0, cx - half), min(w, cx + half)
        x = x.clone()
        x[..., y1:y2, x1:x2] = 0.0
        return x


def _v2_pipeline(ds: TensorImageDataset, cutout: str):  # type: ignore[no-untyped-def]
    """The recipe as a torchvision v2 Compose; ``cutout``: "hand" (:class:`Cutout`) or
    "erasing" (``v2.RandomErasing`` with a fixed 16x16 box)."""
    from torchvision.transforms import v2

    size = ds.images.shape[-1]
    if cutout == "hand":
        hole: nn.Module = Cutout(CUTOUT)
    else:
        area = CUTOUT * CUTOUT / (size * size)
        hole = v2.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=0.0)
    return v2.Compose(
        [
            v2.RandomCrop(size, padding=4),
            v2.RandomHorizontalFlip(),
            v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(ds.mean), list(ds.std)),
            hole,
        ]
    )


def _batches(ds: TensorImageDataset, batch: int, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    while True:
        yield ds.images.index_select(0, torch.randperm(len(ds), generator=g)[:batch])


def torchvision_per_image(
    ds: TensorImageDataset, batch: int, cutout: str = "hand"
) -> Callable[[], int]:
    """One call = one batch through torchvision v2, image by image (``cutout``: hand/erasing)."""
    pipeline, batches = _v2_pipeline(ds, cutout), _batches(ds, batch)

    def call() -> int:
        torch.stack([pipeline(img) for img in next(batches)]).contiguous(
            memory_format=torch.channels_last
        )
        return 1

    return call


def torchvision_batched(ds: TensorImageDataset, batch: int, n: int = 1) -> Callable[[], int]:
    """One call = the v2 pipeline on ``n`` whole uint8 batches, each at once (NOT the recipe:
    one draw per batch); returns ``n``."""
    pipeline, batches = _v2_pipeline(ds, "erasing"), _batches(ds, batch)

    def call() -> int:
        for _ in range(n):
            pipeline(next(batches)).contiguous(memory_format=torch.channels_last)
        return n

    return call


def independent_draws(ds: TensorImageDataset, *, copies: int = 32, calls: int = 8) -> dict:
    """Distinct AutoAugment outputs on a batch of identical images (1 = one draw per batch)."""
    from torchvision.transforms import v2

    same = ds.images[:1].expand(copies, -1, -1, -1).contiguous()
    tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    g = torch.Generator().manual_seed(0)

    def distinct(fn: Callable[[torch.Tensor], torch.Tensor]) -> int:
        return max(len({img.numpy().tobytes() for img in fn(same)}) for _ in range(calls))

    return {
        "ours": distinct(lambda x: autoaugment_batch(x, g)),
        "torchvision_batched": distinct(tv),
    }


def train_step(batch: int, dtype: str, device: torch.device) -> Callable[[], None]:
    """One SGD step of the QAC ResNet-20 (case 4), channels_last, as ``qac.train`` runs it."""
    torch.manual_seed(0)
    model = build("resnet20", 10, activation=dict(QAC_CASE4)).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def augment(
    batch: int = 200,
    rounds: int = 7,
    *,
    device: torch.device | str = "cpu",
    quick: bool = False,
) -> list[dict]:
    """Rows of the ``augment`` section: per-batch time of every candidate, interleaved.

    Cheap candidates (our loader, batched v2) run ``loader_batches`` batches per call (one epoch
    of a dataset that size) to rise above timer noise; the per-image v2 loop and the training
    step run one batch per call.  Our loader and the step run on ``device`` (the loader augments
    on the training device, in the training process, so its time adds to every step);
    torchvision's per-image path always runs on the CPU, as it would in DataLoader workers.
    """
    device = torch.device(device)
    loader_batches = 1 if quick else 4
    ds = cifar_images(max(batch, 2) * loader_batches)
    per_call: dict[str, int] = {}
    candidates: dict[str, Callable[[], object]] = {}
    for name, cfg in LOADER_CONFIGS.items():
        candidates[f"ours: {name}"] = loader_epoch(ds, batch, cfg, device)
        per_call[f"ours: {name}"] = loader_batches
    for cut, hole in (("Cutout", "hand"), ("RandomErasing", "erasing")):
        candidates[f"torchvision v2 per image ({cut})"] = torchvision_per_image(ds, batch, hole)
    candidates["torchvision v2 batched"] = torchvision_batched(ds, batch, loader_batches)
    per_call["torchvision v2 batched"] = loader_batches
    for dtype in ("fp32", "bf16"):
        candidates[f"train step {dtype}"] = train_step(batch, dtype, device)
    for name, fn in candidates.items():  # every call does what it says (and warms up)
        if fn() not in (None, per_call.get(name, 1)):
            raise RuntimeError(f"{name}: unexpected number of batches per call")
    timing = interleaved(candidates, rounds=rounds, warmup=0 if quick else 1, device=device)
    copies = min(32, max(batch, 2))
    draws = independent_draws(ds, copies=copies, calls=2 if quick else 8)
    sec = {
        name: {k: v / per_call.get(name, 1) for k, v in t.items() if k.endswith("_s")}
        for name, t in timing.items()
    }
    step = {d: sec[f"train step {d}"]["median_s"] for d in ("fp32", "bf16")}
    ours_full = sec["ours: full recipe"]["median_s"]
    rows = []
    for name, t in sec.items():
        med = t["median_s"]
        is_step = name.startswith("train step")
        row = {
            "pipeline": name,
            "batch": batch,
            "ms_per_batch": 1e3 * med,
            "img_s": batch / med,
            "x_step_fp32": None if is_step else med / step["fp32"],
            "x_step_bf16": None if is_step else med / step["bf16"],
            "x_ours_full": med / ours_full if name.startswith("torchvision") else None,
            "recipe": None if is_step else name in RECIPE,
            "independent_draws": {
                "ours: full recipe": draws["ours"],
                "torchvision v2 batched": draws["torchvision_batched"],
            }.get(name),
            "min_ms": 1e3 * t["min_s"],
            "max_ms": 1e3 * t["max_s"],
            "rounds": timing[name]["runs"],
            "device": "cpu" if name.startswith("torchvision") else device.type,
            "batches_per_round": per_call.get(name, 1),
        }
        if name == "torchvision v2 batched":
            row["note"] = (
                "torchvision v2 on a batched tensor draws one AutoAugment sub-policy (and one crop "
                f"and flip) per call: {draws['torchvision_batched']} distinct output(s) on "
                f"{copies} identical images vs {draws['ours']} for ours; not the recipe, timed "
                "for reference"
            )
        if name.endswith("(RandomErasing)"):
            row["note"] = (
                "RandomErasing keeps its 16x16 box inside the image; QCFS Cutout centres it "
                "anywhere and clips it at the border (the per-image Cutout row)"
            )
        rows.append(row)
    return rows
