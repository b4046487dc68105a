"""Layer selection from an intrinsic-dimension curve, and its stability under resampling.

The rule, for a curve over `L` layers:

1. Skip the first `skip = ceil(skip_fraction * L)` layers (layers `0..skip-1`).
2. The window width is `w = max(2, round(0.1 L))` unless given.
3. Let `m` be the first layer with the smallest ID among layers `skip..L-1`. If
   `m` is interior to that range (neither `skip` nor `L - 1`) and
   `curve[m] < 0.9 * min(curve[skip], curve[L - 1])`, choose the `w`
   consecutive layers starting at `min(m, L - w)`.
4. Otherwise choose the `w` lowest-ID layers among `skip..L-1` (ties go to the
   earlier layer), sorted ascending.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from vaembed.calibration.twonn import id_curve
from vaembed.recipes.layers import window_width

__all__ = ["DIP_RATIO", "SKIP_FRACTION", "StableSelection", "select_layers", "stable_selection", "window_width"]

SKIP_FRACTION = 0.2
"""Leading fraction of layers the rule never chooses."""

DIP_RATIO = 0.9
"""An interior minimum counts only if it is below this fraction of the smaller end value."""

Selection = tuple[int, ...]


def select_layers(
    curve: Sequence[float], *, skip_fraction: float = SKIP_FRACTION, width: int | None = None
) -> Selection:
    """Choose the calibrated layers from an intrinsic-dimension curve (see the module docstring).

    Args:
        curve: One intrinsic-dimension value per layer.
        skip_fraction: Fraction of leading layers never chosen; `ceil(skip_fraction * L)` are skipped.
        width: Number of layers to choose; `window_width(L)` when None.

    Returns:
        Sorted layer indices, `width` of them.

    Raises:
        ValueError: The curve is not 1-D or holds non-finite values, `skip_fraction`
            is outside [0, 1), `width` is below 1, or fewer than `width` layers remain
            after skipping.
    """
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"curve must be 1-D (one value per layer), got shape {values.shape}")
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values)).tolist()
        raise ValueError(f"curve has non-finite values at layers {bad}")
    if not 0.0 <= skip_fraction < 1.0:
        raise ValueError(f"skip_fraction must be in [0, 1), got {skip_fraction}")
    num_layers = values.size
    skip = int(math.ceil(skip_fraction * num_layers))
    w = window_width(num_layers) if width is None else int(width)
    if w < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if num_layers - skip < w:
        raise ValueError(
            f"Too few layers: {num_layers} layers leave {num_layers - skip} after skipping {skip}, "
            f"fewer than the window width {w}"
        )
    rest = values[skip:]
    m = skip + int(np.argmin(rest))
    ends = min(values[skip], values[-1])
    if skip < m < num_layers - 1 and values[m] < DIP_RATIO * ends:
        start = min(m, num_layers - w)
        return tuple(range(start, start + w))
    lowest = np.argsort(rest, kind="stable")[:w] + skip
    return tuple(sorted(int(i) for i in lowest))


@dataclass(frozen=True)
class StableSelection:
    """Layer selection with its stability under resampling of the texts.

    Attributes:
        curve: Intrinsic dimension of each layer on the full data.
        curve_std: Standard deviation of each layer's ID over the resamples.
        layers: The selection chosen most often across resamples (ties go to
            `full_data_layers`, then to the selection seen first).
        frequency: Fraction of resamples whose selection equals `layers` exactly.
        full_data_layers: The selection on the full data.
        selections: `(selection, count)` pairs over the resamples, most frequent first.
    """

    curve: tuple[float, ...]
    curve_std: tuple[float, ...]
    layers: Selection
    frequency: float
    full_data_layers: Selection
    selections: tuple[tuple[Selection, int], ...]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists)."""
        return asdict(self)


SUBSAMPLE_FRACTION = 0.8
"""Fraction of the texts drawn (without replacement) by each resample."""


def stable_selection(
    states: Sequence[np.ndarray],
    *,
    resamples: int = 20,
    seed: int = 0,
    skip_fraction: float = SKIP_FRACTION,
    width: int | None = None,
) -> StableSelection:
    """Select layers on the full data and on random subsamples of the texts.

    Every resample draws `max(3, round(0.8 N))` distinct texts without
    replacement and uses them at every layer. (Subsampling rather than the
    bootstrap: TwoNN drops duplicate rows, so bootstrap samples would differ in
    size and carry ties at distance zero.)

    Args:
        states: `states[l]` is an (N, D) array of per-text vectors at layer `l`; `N`
            must be the same for every layer.
        resamples: Number of subsamples, at least 1.
        seed: Seed of the resampling generator.
        skip_fraction: Passed to `select_layers`.
        width: Passed to `select_layers`.

    Returns:
        The full-data curve and selection, and the resampled selections' summary.

    Raises:
        ValueError: No layers, layers with different text counts, fewer than 3
            texts, `resamples < 1`, or any error from `id_curve` / `select_layers`.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if len(states) == 0:
        raise ValueError("states is empty: need at least one layer")
    counts = {int(np.shape(layer)[0]) if np.ndim(layer) >= 1 else -1 for layer in states}
    if len(counts) != 1:
        raise ValueError(f"every layer must hold the same number of texts, got counts {sorted(counts)}")
    num = counts.pop()
    if num < 3:
        raise ValueError(f"need at least 3 texts, got {num}")
    arrays = [np.asarray(layer) for layer in states]

    curve = id_curve(arrays)
    full = select_layers(curve, skip_fraction=skip_fraction, width=width)

    rng = np.random.default_rng(seed)
    size = max(3, round(SUBSAMPLE_FRACTION * num))
    curves = np.empty((resamples, len(arrays)))
    tally: Counter[Selection] = Counter()
    for r in range(resamples):
        idx = np.sort(rng.choice(num, size=size, replace=False))
        curves[r] = id_curve([layer[idx] for layer in arrays])
        tally[select_layers(curves[r], skip_fraction=skip_fraction, width=width)] += 1

    top = max(tally.values())
    tied = [sel for sel, count in tally.items() if count == top]  # insertion order = first seen
    layers = full if full in tied else tied[0]
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    std = curves.std(axis=0, ddof=1) if resamples > 1 else np.zeros(len(arrays))
    return StableSelection(
        curve=tuple(float(v) for v in curve),
        curve_std=tuple(float(v) for v in std),
        layers=layers,
        frequency=top / resamples,
        full_data_layers=full,
        selections=tuple(ranked),
    )
