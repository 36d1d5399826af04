"""The benchmark harness itself runs and writes its JSON + Markdown (numbers are not checked:
timing is measured by ``python -m benchmarks``, not asserted in tests)."""

from __future__ import annotations

import json

import torch

from benchmarks import cases
from benchmarks.models import MIXED_PROFILES, benchmark_ann, benchmark_images
from benchmarks.run import main
from qac.convert import quantizers, to_snn


def test_quick_benchmark_run_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    rc = main(
        ["--quick", "--only", "dense,sweep,qat,augment", "--batch", "4", "--rounds", "1", "--out",
         str(out)]  # fmt: skip
    )
    assert rc == 0
    result = json.loads((out / "benchmarks.json").read_text())
    assert set(result["sections"]) == {"dense_bound", "sweep", "qat_overhead", "augment"}
    assert result["machine"]["device"] in ("cpu", "cuda")
    assert all(row["same_accuracies"] for row in result["sections"]["sweep"])
    assert all(row["efficiency"] > 0 for row in result["sections"]["dense_bound"])
    text = (out / "benchmarks.md").read_text()
    assert "## 2. Efficiency against the dense bound" in text and "| resnet20 |" in text


def test_nominal_steps_count_every_layer_at_its_dense_length():
    images = benchmark_images(2)
    ann = benchmark_ann("resnet20", images, activation="qac", timesteps=MIXED_PROFILES["resnet20"])
    assert [q.T for _, q in quantizers(ann)] == MIXED_PROFILES["resnet20"]
    snn = to_snn(ann, "aver+aver+aver")
    steps = cases.nominal_steps(snn, images)
    assert steps["stem.1"] == MIXED_PROFILES["resnet20"][0]  # first conv: T of its neuron
    assert steps["head.3"] == MIXED_PROFILES["resnet20"][-1]  # classifier: last neuron's T
    assert not snn.reference  # restored


def test_percentile_thresholds_give_realistic_firing():
    images = benchmark_images(8)
    ann = benchmark_ann("resnet20", images, activation="qcfs", timesteps=4)
    snn = to_snn(ann, "qcfs", timesteps=4)
    snn.set_record(True)
    with torch.no_grad():
        snn(images)
    rates = [n.stats()["firing_rate"] for n in snn.modules() if hasattr(n, "spike_count")]
    assert 0.005 < sum(rates) / len(rates) < 0.5
