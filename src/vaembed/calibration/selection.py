"""Layer selection from an intrinsic-dimension curve: the rules a calibration probe may use.

`RULES` names the selection rules a calibration probe may use; each takes a
curve and returns `w = max(2, round(0.1 L))` layers (unless a width is given),
never among the first `ceil(skip_fraction * L)`:

- `"interior-min"` (METHODS.md, `select_layers`): below.
- `"global-min"`: the window starting at the curve's smallest value after the skip
  (moved left if it would run past the last layer).
- `"smoothed-min"`: the same on the curve smoothed by a 3-layer moving average
  (the ends average their two layers), which a single noisy layer cannot move.

The METHODS rule, for a curve over `L` layers:

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
from collections.abc import Sequence

import numpy as np

from vaembed.recipes.layers import window_width

__all__ = ["DIP_RATIO", "RULES", "SKIP_FRACTION", "select_layers", "select_window", "window_width"]

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


def _window_at(values: np.ndarray, skip: int, width: int) -> Selection:
    start = min(skip + int(np.argmin(values[skip:])), values.size - width)
    return tuple(range(start, start + width))


def _checked(curve: Sequence[float], skip_fraction: float, width: int | None) -> tuple[np.ndarray, int, int]:
    """Validate like `select_layers`; return the curve, the skip and the width."""
    values = np.asarray(curve, dtype=np.float64)
    select_layers(values, skip_fraction=skip_fraction, width=width)  # raises on a bad curve or arguments
    return values, int(math.ceil(skip_fraction * values.size)), window_width(values.size) if width is None else width


def select_global_min(
    curve: Sequence[float], *, skip_fraction: float = SKIP_FRACTION, width: int | None = None
) -> Selection:
    """The window starting at the smallest value after the skip (see the module docstring)."""
    values, skip, w = _checked(curve, skip_fraction, width)
    return _window_at(values, skip, w)


def select_smoothed_min(
    curve: Sequence[float], *, skip_fraction: float = SKIP_FRACTION, width: int | None = None
) -> Selection:
    """The window starting at the smallest value of the 3-layer moving average after the skip."""
    values, skip, w = _checked(curve, skip_fraction, width)
    padded = np.concatenate([values[:1], values, values[-1:]])
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    smooth[0], smooth[-1] = values[:2].mean(), values[-2:].mean()
    return _window_at(smooth, skip, w)


RULES = {"interior-min": select_layers, "global-min": select_global_min, "smoothed-min": select_smoothed_min}
"""Selection rules by name: curve (and `skip_fraction`, `width`) -> sorted layer indices."""


def select_window(
    curve: Sequence[float],
    rule: str = "interior-min",
    *,
    skip_fraction: float = SKIP_FRACTION,
    width: int | None = None,
) -> Selection:
    """Apply the rule named `rule` (a key of `RULES`) to a curve.

    Raises:
        ValueError: An unknown rule, or any error of the rule itself.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    return RULES[rule](curve, skip_fraction=skip_fraction, width=width)
