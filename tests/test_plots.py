"""Calibration figures: PNGs are written atomically, bad inputs are refused."""

from __future__ import annotations

import sys

import pytest

from vaembed.calibration.plots import plot_id_curve, plot_sweep
from vaembed.calibration.sweep import SweepResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CURVE = [14.0, 11.5, 9.0, 6.5, 5.0, 5.5, 7.0, 8.0, 9.5, 10.0]


def result(recipe: str, scores: list[float], metric: str = "spearman", width: int = 2) -> SweepResult:
    windows = tuple(sum(scores[s : s + width]) / width for s in range(len(scores) - width + 1))
    best = max(range(len(windows)), key=lambda s: (windows[s], -s))
    return SweepResult(
        recipe, "value_mean", metric, width, tuple(scores), windows, tuple(range(best, best + width)), windows[best], 1
    )


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 2000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_id_curve_png_with_band_and_plain_curve(tmp_path):
    target = tmp_path / "figures" / "id.png"
    written = plot_id_curve(
        CURVE, [4, 5], target, title="ID per layer", curve_std=[0.5] * 10, plain_curve=[v - 1 for v in CURVE]
    )
    assert written == target
    assert_png(target)
    plot_id_curve(CURVE, (3, 4, 8), target, title="again")  # overwrites in place, non-contiguous layers
    assert_png(target)


def test_id_curve_refuses_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"curve_std has 3 values but curve has 10"):
        plot_id_curve(CURVE, [4], tmp_path / "a.png", title="t", curve_std=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"plain_curve has 11 values but curve has 10"):
        plot_id_curve(CURVE, [4], tmp_path / "a.png", title="t", plain_curve=CURVE + [1.0])
    with pytest.raises(ValueError, match="Chosen layer 10 is out of range for a curve of 10 layers"):
        plot_id_curve(CURVE, [9, 10], tmp_path / "a.png", title="t")
    assert not list(tmp_path.iterdir())


def test_sweep_png_with_several_results(tmp_path):
    results = [result("va", [0.1, 0.4, 0.6, 0.5, 0.2]), result("wva", [0.2, 0.3, 0.3, 0.7, 0.6])]
    target = plot_sweep(results, tmp_path / "sweep.png", title="Layer sweep")
    assert_png(target)


def test_sweep_plot_refuses_mismatched_results(tmp_path):
    with pytest.raises(ValueError, match=r"different numbers of layers \[4, 5\]"):
        plot_sweep([result("va", [0.1] * 5), result("wva", [0.1] * 4)], tmp_path / "s.png", title="t")
    with pytest.raises(ValueError, match="different metrics"):
        plot_sweep([result("va", [0.1] * 5), result("va", [0.1] * 5, "ndcg@10")], tmp_path / "s.png", title="t")
    with pytest.raises(ValueError, match="results is empty"):
        plot_sweep([], tmp_path / "s.png", title="t")
    with pytest.raises(TypeError, match=r"results\[0\] must be a SweepResult"):
        plot_sweep([[0.1, 0.2]], tmp_path / "s.png", title="t")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "vaembed\[plot\]"'):
        plot_id_curve(CURVE, [4], tmp_path / "a.png", title="t")
