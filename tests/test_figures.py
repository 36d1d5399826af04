"""Tests for the figures (qac/report/figures): every figure renders from the fixtures, skipped
or missing panels become one-line notes (a fully skipped figure is small), log2 T axes, 95 %
intervals from the tidy results' ``ci_low``/``ci_high`` (none in files without them), ours and
the paper's on separate axes where far apart, distinct case styles, the training curves.

Fixtures: ``tests/fixtures/report/eval`` (see tests/test_report.py)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from qac.experiments import CASES
from qac.report._common import ReportInputError
from qac.report.collect import LAYER_COLUMNS, TIDY_COLUMNS

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("matplotlib", "seaborn", "PIL")),
    reason="matplotlib/seaborn not installed",
)

FIXTURES = Path(__file__).parent / "fixtures" / "report" / "eval"
EVAL_FILES = sorted(str(p) for p in FIXTURES.glob("*/*/*.json"))
SKIPPED = [
    ("*", "cifar100", "*", "CIFAR-100 not available at cpu scale"),
    ("*", "imagenet", "vgg16", "ImageNet not available at cpu scale"),
]
ALL = ("fig1", "fig2", "fig3", "figs5_10", "fig_table8")
DPI = 60


def _png(path: Path) -> tuple[tuple[int, int], str]:
    """(size, notes) of a written PNG; fails when it is blank."""
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        size, notes = im.size, im.info.get("Description", "")
        assert np.asarray(im.convert("L"), dtype=float).std() > 1.0, f"{path.name} is blank"
    return size, notes


@pytest.fixture
def captured(monkeypatch) -> dict[str, Any]:
    """The matplotlib figure behind every file written, by stem."""
    from qac.report.figures import _base, cases, layers, sweeps, training

    figs: dict[str, Any] = {}
    orig = _base.save

    def spy(fig, out_dir, stem, notes=()):
        figs[stem] = fig
        return orig(fig, out_dir, stem, notes)

    for mod in (_base, cases, layers, sweeps, training):
        monkeypatch.setattr(mod, "save", spy)
    return figs


@pytest.fixture(scope="module")
def figure_run(tmp_path_factory, tidy, layers, reference):
    from qac.report.figures import make_figure

    out = tmp_path_factory.mktemp("figures")
    paths = {
        n: make_figure(n, (tidy, layers), reference, out, skipped=SKIPPED, scale="cpu", dpi=DPI)
        for n in ALL
    }
    return out, paths


def test_every_figure_renders(figure_run) -> None:
    from qac.report.figures import FIGURE_FILES, FIGURE_NAMES

    out, paths = figure_run
    assert set(ALL) <= set(FIGURE_NAMES)
    stems = [s for n in ALL for s in FIGURE_FILES[n]]
    assert sorted(p.name for n in ALL for p in paths[n]) == sorted(
        f"{s}.{e}" for s in stems for e in ("png", "pdf")
    )
    for s in stems:
        _png(out / f"{s}.png")
        pdf = (out / f"{s}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 500
    assert not list(out.glob(".*"))


def test_missing_panels_are_one_line_notes(figure_run) -> None:
    out, _ = figure_run
    notes = {s: _png(out / f"{s}.png")[1] for s in ("fig1", "fig2", "fig3", "fig5", "fig7")}
    assert notes["fig1"] == notes["fig7"] == ""  # nothing missing
    assert notes["fig2"] == (
        "VGG-16 / CIFAR-100, ResNet-20 / CIFAR-100: skipped (CIFAR-100 not available at cpu scale)"
    )
    assert "ResNet-18 / CIFAR-10: ours no results (not run)" in notes["fig3"].splitlines()
    assert notes["fig5"] == "Fig. 5 - ResNet-18 / CIFAR-10: per-layer timesteps and bit-width: " + (
        "no results (not run)"
    )


def test_skipped_figure_is_small(figure_run) -> None:
    out, _ = figure_run
    (w, h), note = _png(out / "fig10.png")
    assert note == (
        "Fig. 10 - VGG-16 / ImageNet: per-layer timesteps and bit-width: "
        "skipped (ImageNet not available at cpu scale)"
    )
    assert "\n" not in note and h < 1.0 * DPI and w > 3 * h
    (_, full_h), _ = _png(out / "fig7.png")
    assert full_h > 4 * h


def test_fully_skipped_figures(tmp_path: Path) -> None:
    from qac.report.figures import make_figure

    skip = [("*", "*", "*", "nothing runs at this scale")]
    empty = pd.DataFrame(columns=list(TIDY_COLUMNS))
    paths = make_figure("fig2", empty, None, tmp_path, skipped=skip, dpi=DPI)
    paths += make_figure(
        "fig1", pd.DataFrame(columns=list(LAYER_COLUMNS)), None, tmp_path, skipped=skip, dpi=DPI
    )
    paths += make_figure("fig_table8", empty, None, tmp_path, skipped=skip, dpi=DPI)
    assert [p.name for p in paths] == [
        f"{s}.{e}" for s in ("fig2", "fig1", "fig_table8") for e in ("png", "pdf")
    ]
    for p in paths[::2]:
        (_, h), note = _png(p)
        assert h < 1.0 * DPI and note.count("\n") == 0
        assert "skipped (nothing runs at this scale)" in note


def _is_log2(axis: Any) -> bool:
    return axis.get_scale() == "log" and axis.get_transform().base == 2


def test_timestep_axes_are_log2(tmp_path, captured, tidy, layers, reference) -> None:
    from qac.report.figures import make_figure

    for name in ("fig1", "fig7", "fig_table8"):
        make_figure(name, (tidy, layers), reference, tmp_path, scale="cpu", dpi=DPI)
    t_ax, bits_ax = captured["fig7"].axes[:2]
    assert _is_log2(t_ax.yaxis) and bits_ax.get_yscale() == "linear"
    assert _is_log2(captured["fig1"].axes[0].yaxis)
    sweep_axes = [ax for ax in captured["fig_table8"].axes if ax.get_lines()]
    assert sweep_axes and all(_is_log2(ax.xaxis) for ax in sweep_axes)


def test_intervals_only_where_the_results_have_them(tmp_path, captured, tidy, reference) -> None:
    from qac.report.figures import make_figure

    make_figure("fig3", tidy, reference, tmp_path / "a", scale="cpu", dpi=DPI)
    make_figure("fig2", tidy, None, tmp_path / "a", scale="cpu", dpi=DPI)
    with_ci = captured["fig3"], captured["fig2"]
    old = tidy.drop(columns=["ci_low", "ci_high"])
    make_figure("fig3", old, reference, tmp_path / "b", scale="cpu", dpi=DPI)
    make_figure("fig2", old, None, tmp_path / "b", scale="cpu", dpi=DPI)
    without = captured["fig3"], captured["fig2"]

    def bands(fig) -> int:
        return sum(len(ax.collections) for ax in fig.axes)

    def error_bars(fig) -> int:
        return sum(c.has_yerr for ax in fig.axes for c in ax.containers if hasattr(c, "has_yerr"))

    assert bands(with_ci[0]) > 0 and bands(without[0]) == 0
    assert error_bars(with_ci[1]) > 0 and error_bars(without[1]) == 0


def test_fig3_far_apart_not_on_one_axis(tmp_path, captured, tidy, reference) -> None:
    from qac.report.figures import make_figure

    make_figure("fig3", tidy, reference, tmp_path, scale="cpu", dpi=DPI)
    axes = captured["fig3"].axes
    n = len(axes) // 2
    acc, gain = axes[:n], axes[n:]
    for ax in acc:  # ours ~10 %, the paper's ~90 %: the paper's is only named
        assert [ln.get_label() for ln in ax.get_lines()] == ["ours"]
        assert any("not on this axis" in t.get_text() for t in ax.texts)
        lo, hi = ax.get_ylim()
        assert hi - lo >= 10.0  # noise never fills the axis
    assert all(len(ax.get_lines()) == 3 for ax in gain)  # ours, paper, zero line


def test_case_styles_are_distinct() -> None:
    from qac.report.figures._base import case_style, set_style

    set_style(DPI)
    styles = [case_style(c) for c in CASES]
    assert len({s["marker"] for s in styles}) == len(CASES)
    assert len({s["ls"] for s in styles}) == len(CASES)
    for a, b in itertools.combinations(styles, 2):
        assert np.abs(np.subtract(a["color"], b["color"])).sum() > 0.4  # not two oranges


def _write_log(root: Path, model: str, epochs: int, T: float) -> Path:
    path = root / model / "log.jsonl"
    path.parent.mkdir(parents=True)
    lines = [
        {"epoch": e, "train_loss": 2.0 / e, "layers": [{"layer": "a", "T": T}, {"T": 2 * T}]}
        | ({"test_acc": 10.0 * e} if e % 2 == 0 else {})
        for e in range(1, epochs + 1)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_training_figure(tmp_path: Path, captured) -> None:
    from qac.report.figures import read_training_logs, training_figure

    root = tmp_path / "checkpoints" / "cpu"
    logs = [
        _write_log(root, "cifar10/resnet20/qac-c4", 6, 4.0),
        _write_log(root, "cifar10/resnet20/qcfs-L8", 6, 8.0),
        _write_log(root, "cifar10/vgg16/qac-c3", 4, 30.0),
    ]
    df = read_training_logs(logs)
    assert len(df) == 16 and df["test_acc"].notna().sum() == 8
    assert df.loc[df["act"] == "qac-c4", "mean_T"].eq(6.0).all()
    paths = training_figure(logs, tmp_path / "out", dpi=DPI)
    assert [p.name for p in paths] == ["training.png", "training.pdf"]
    _png(paths[0])
    fig = captured["training"]
    assert len(fig.axes) == 2 * 3
    assert _is_log2(fig.axes[2].yaxis)
    (_, h), note = _png(training_figure([], tmp_path / "none", dpi=DPI)[0])
    assert h < 1.0 * DPI and note == "Training curves: no training logs"
    with pytest.raises(ReportInputError, match="not under"):
        read_training_logs([_write_log(tmp_path, "x", 1, 1.0)])


def test_make_figure_bad_input(tmp_path: Path, tidy) -> None:
    from qac.report.figures import make_figure

    with pytest.raises(ReportInputError, match="unknown figure"):
        make_figure("fig4", tidy, None, tmp_path)
    with pytest.raises(ReportInputError, match="layer profiles"):
        make_figure("fig1", tidy, None, tmp_path)
    with pytest.raises(ReportInputError, match="tidy results"):
        make_figure("fig_table8", None, None, tmp_path, layers=pd.DataFrame())
