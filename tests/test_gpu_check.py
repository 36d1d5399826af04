"""The prepared GPU check's plumbing, on the CPU (``python -m qac.gpu_check --dry-run``)."""

from __future__ import annotations

import json

import qac.gpu_check as gpu_check


def test_dry_run_builds_every_part_and_runs_the_cpu_forms(tmp_path, capsys):
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    parts = summary["parts"]
    assert summary["ok"] and summary["dry_run"] and list(parts) == list(gpu_check.PARTS)
    assert {name: p["status"] for name, p in parts.items()} == {
        "cuda_tests": "pass",
        "smoke_dag": "pass",
        "resnet20": "pass",
        "benchmarks": "pass",
        "ddp": "listed",
    }
    assert parts["cuda_tests"]["metrics"]["tests"] >= 1
    assert "device=cpu" in parts["smoke_dag"]["command"] and "-n" in parts["smoke_dag"]["command"]
    assert "--nproc-per-node=2" in parts["ddp"]["command"]
    metrics = parts["resnet20"]["metrics"]
    assert metrics["snn_acc_aver_f64"] == metrics["ann_acc_f64"]
    assert metrics["train_images_per_s"] > 0 and metrics["snn_images_per_s"] > 0
    assert "| resnet20 | PASS |" in (tmp_path / "summary.md").read_text()
    assert "GPU check: PASS" in capsys.readouterr().out


def test_cuda_tests_are_found():
    assert "tests/test_data_loader.py::test_loader_on_cuda_matches_cpu" in gpu_check.cuda_test_ids()


def test_a_failing_part_fails_the_check(tmp_path, monkeypatch):
    def broken(opts):
        raise RuntimeError("boom")

    monkeypatch.setitem(gpu_check.CHECKS, "ddp", broken)
    assert gpu_check.main(["--dry-run", "--only", "ddp", "--out", str(tmp_path)]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["ok"] and summary["parts"]["ddp"]["detail"] == "RuntimeError: boom"
    assert "| ddp | FAIL |" in (tmp_path / "summary.md").read_text()


def test_without_cuda_the_real_check_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "pass --dry-run" in capsys.readouterr().err
    assert gpu_check.main(["--dry-run", "--only", "nope"]) == 2
