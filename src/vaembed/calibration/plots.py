"""Figures for layer calibration: the intrinsic-dimension curve and supervised sweeps.

matplotlib is optional (`pip install "vaembed[plot]"`) and imported only when a
figure is drawn. Figures are rendered with the Agg backend on their own canvas
(pyplot's global state is never touched) and written atomically: to a temporary
file in the target folder, then renamed over the target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vaembed.cache import atomic_file
from vaembed.calibration.selection import SKIP_FRACTION
from vaembed.calibration.sweep import SweepResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_id_curve", "plot_sweep"]

_METRIC_LABELS = {"spearman": "Spearman correlation", "ndcg@10": "nDCG@10"}


def _figure() -> tuple[Figure, Axes]:
    """A new figure on an Agg canvas, or ImportError naming the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('Plotting needs matplotlib: pip install "vaembed[plot]"') from err
    figure = Figure(figsize=(8.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `figure` as a PNG at `path` atomically; return the path."""
    with atomic_file(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=120)
    return Path(path)


def _series(values: Any, name: str, length: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} values but curve has {length} (one per layer)")
    return array


def _runs(layers: Sequence[int]) -> list[tuple[int, int]]:
    """Group sorted layer indices into runs of consecutive layers `(first, last)`."""
    runs: list[tuple[int, int]] = []
    for layer in sorted(set(layers)):
        if runs and layer == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], layer)
        else:
            runs.append((layer, layer))
    return runs


def plot_id_curve(
    curve: Sequence[float],
    chosen_layers: Sequence[int],
    path: str | os.PathLike[str],
    *,
    title: str,
    curve_std: Sequence[float] | None = None,
    plain_curve: Sequence[float] | None = None,
) -> Path:
    """Plot an intrinsic-dimension curve with the chosen layers, and save it as a PNG.

    Args:
        curve: Intrinsic dimension of each layer.
        chosen_layers: The calibrated layers (shaded).
        path: Where the PNG goes (parent folders are created).
        title: The figure's title.
        curve_std: Per-layer standard deviation over resamples (drawn as a band).
        plain_curve: The uncorrected TwoNN curve (drawn dashed).

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: `curve_std` or `plain_curve` has a different length from
            `curve`, or a chosen layer is out of range.
        TypeError: A chosen layer is not an int.
    """
    values = _series(curve, "curve")
    count = values.size
    std = None if curve_std is None else _series(curve_std, "curve_std", count)
    plain = None if plain_curve is None else _series(plain_curve, "plain_curve", count)
    chosen = list(chosen_layers)
    for layer in chosen:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"chosen_layers must hold ints, not {type(layer).__name__}")
        if not 0 <= layer < count:
            raise ValueError(f"Chosen layer {layer} is out of range for a curve of {count} layers")

    figure, axes = _figure()
    layers = np.arange(count)
    skip = math.ceil(SKIP_FRACTION * count)
    if skip:
        axes.axvspan(
            -0.5, skip - 0.5, facecolor="0.85", edgecolor="0.6", hatch="//", linewidth=0, label="skipped (first 20%)"
        )
    for index, (first, last) in enumerate(_runs([int(layer) for layer in chosen])):
        axes.axvspan(first - 0.5, last + 0.5, color="tab:orange", alpha=0.3, label=None if index else "chosen layers")
    if std is not None:
        axes.fill_between(layers, values - std, values + std, color="tab:blue", alpha=0.2, label="±1 std (resamples)")
    if plain is not None:
        axes.plot(layers, plain, linestyle="--", color="tab:gray", label="TwoNN (uncorrected)")
    axes.plot(layers, values, marker="o", color="tab:blue", label="intrinsic dimension")
    axes.set_xlim(-0.5, count - 0.5)
    axes.set_xlabel("layer")
    axes.set_ylabel("intrinsic dimension (TwoNN)")
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    return _save(figure, path)


def plot_sweep(results: Sequence[SweepResult], path: str | os.PathLike[str], *, title: str) -> Path:
    """Plot the per-layer scores of one or more sweeps, each best window marked, and save it as a PNG.

    Each result is a solid line of single-layer scores; its window scores are a
    dotted line at the windows' centres, and its best window a thick bar at the
    best score spanning the window's layers.

    Args:
        results: Sweeps over the same number of layers with the same metric.
        path: Where the PNG goes (parent folders are created).
        title: The figure's title.

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        TypeError: An item is not a `SweepResult`.
        ValueError: No results, or results with different layer counts or metrics.
    """
    items = list(results)
    if not items:
        raise ValueError("results is empty: need at least one SweepResult")
    for index, item in enumerate(items):
        if not isinstance(item, SweepResult):
            raise TypeError(f"results[{index}] must be a SweepResult, not {type(item).__name__}")
    counts = sorted({item.num_layers for item in items})
    if len(counts) > 1:
        raise ValueError(f"results cover different numbers of layers {counts}; plot one model at a time")
    metrics = sorted({item.metric for item in items})
    if len(metrics) > 1:
        raise ValueError(f"results use different metrics {metrics}; plot one dev set at a time")

    figure, axes = _figure()
    colors = [f"C{i % 10}" for i in range(len(items))]
    for item, color in zip(items, colors, strict=True):
        layers = np.arange(item.num_layers)
        axes.plot(layers, item.layer_scores, marker="o", color=color, label=item.label)
        centres = np.arange(len(item.window_scores)) + (item.width - 1) / 2.0
        axes.plot(centres, item.window_scores, linestyle=":", color=color, alpha=0.8)
        first, last = item.best_layers[0], item.best_layers[-1]
        axes.hlines(item.best_score, first - 0.4, last + 0.4, colors=color, linewidth=4, alpha=0.7)
        axes.plot([(first + last) / 2.0], [item.best_score], marker="*", markersize=14, color=color)
    axes.plot([], [], linestyle=":", color="0.4", label="window score (at its centre)")
    axes.plot([], [], marker="*", linestyle="-", linewidth=4, color="0.4", label="best window")
    axes.set_xlim(-0.5, counts[0] - 0.5)
    axes.set_xlabel("layer")
    axes.set_ylabel(_METRIC_LABELS.get(metrics[0], metrics[0]))
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    return _save(figure, path)
