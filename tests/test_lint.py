"""The workflow's own hygiene: `snakemake --lint` finds nothing at every scale (each shell rule
names its software environment, takes non-file values through params and has a log), and
`--list-target-rules` offers exactly the documented user-facing targets, each with its
docstring (the internal rules carry the {scale} wildcard and are not offered)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qac.workflow import ARTIFACTS

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
#: The targets a user runs by name (README, "The workflow"); everything else is internal.
TARGETS = {"all", "models", "summary", "training", *ARTIFACTS}

pytestmark = pytest.mark.skipif(
    shutil.which(SNAKEMAKE) is None and not Path(SNAKEMAKE).exists(),
    reason="snakemake is not installed (pip install -e '.[workflow]')",
)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir),
        "--workflow-profile", "none",
        *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("scale", ["smoke", "cpu", "paper"])
def test_lint_is_clean(tmp_path, scale):
    proc = snakemake(tmp_path, "--lint", "--config", f"scale={scale}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-4000:]
    assert "Congratulations, your workflow is in a good condition" in out


def test_lint_fails_on_a_lint(tmp_path):
    """CI relies on `snakemake --lint` exiting non-zero when it finds something."""
    bad = tmp_path / "Snakefile"
    bad.write_text('rule x:\n    output: "x.txt"\n    shell: "touch {output}"\n')
    cmd = [SNAKEMAKE, "--snakefile", str(bad), "--directory", str(tmp_path), "--lint"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Lints for rule x" in proc.stdout + proc.stderr


def test_target_rules_are_the_documented_targets(tmp_path):
    proc = snakemake(tmp_path, "--list-target-rules", "--config", "scale=smoke")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    listed = {line.split(" (", 1)[0]: line for line in lines}
    assert set(listed) == TARGETS, sorted(set(listed) ^ TARGETS)
    undocumented = [name for name, line in listed.items() if not line.endswith(")")]
    assert not undocumented, undocumented


def test_the_environment_installs_this_checkout():
    """Every shell rule names workflow/envs/qac.yaml (the lint above checks that each has one):
    the pinned torch and this checkout, editable, from the path the Snakefile exports."""
    env = yaml.safe_load((REPO / "workflow" / "envs" / "qac.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch==2.14.1" in pip and "torchvision==0.29.1" in pip
    assert "-e ${QAC_REPO}[workflow]" in pip
    assert "os.environ.update(QAC_REPO=str(REPO))" in SNAKEFILE.read_text()
    assert 'ENV = "../envs/qac.yaml"' in (REPO / "workflow" / "rules" / "common.smk").read_text()
