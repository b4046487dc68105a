"""TwoNN intrinsic-dimension estimator (Facco et al., 2017) in plain numpy.

For every point the ratio `mu = r2 / r1` of the distances to its second and
first nearest neighbours follows a Pareto law `F(mu) = 1 - mu^(-d)` when the
data are locally uniform on a `d`-dimensional manifold. Hence
`-log(1 - F(mu)) = d log(mu)`, and `d` is the slope of a least-squares line
through the origin fitted to the empirical CDF of the sorted ratios.

Finite-sample correction. The Pareto law needs the density to be uniform up to
the second neighbour. With `N = 1000` points in `d = 20` dimensions the
neighbours are about as far apart as the data are wide, and the plain slope
falls to about 0.8 d on every distribution tried (Gaussian, ball, sphere,
Student-t, cube). `twonn_dimension` therefore maps the plain slope through a
reference curve: the mean plain slope of `N` points drawn uniformly on the unit
sphere `S^k` (no boundary, uniform density), computed for integer `k` with fixed
seeds and inverted by linear interpolation. The map is increasing, so an ID
curve keeps its ordering; `corrected=False` gives the plain estimate.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CHUNK_ROWS",
    "REFERENCE_SAMPLES",
    "TooFewPointsError",
    "id_curve",
    "nearest_two_distances",
    "reference_slope",
    "twonn_dimension",
]

CHUNK_ROWS = 256
"""Query rows per distance block: at most `CHUNK_ROWS x N` distances live at once."""

REFERENCE_SAMPLES = 16
"""Sphere samples averaged per point of the reference curve."""

MAX_REFERENCE_DIMENSION = 4096
"""Largest sphere dimension the reference curve is computed for."""


class TooFewPointsError(ValueError):
    """A point cloud holds fewer than 3 distinct points (TwoNN needs two neighbours per point)."""


def _validated_points(points: np.ndarray) -> np.ndarray:
    """Return `points` as distinct float64 rows, or raise a ValueError naming the problem."""
    array = np.asarray(points)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array of shape (N, D), got {array.ndim}-D shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"points must have at least one feature column, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"points must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        kinds = [name for name, mask in (("NaN", np.isnan(array)), ("Inf", np.isinf(array))) if mask.any()]
        raise ValueError(
            f"points contain non-finite values ({' and '.join(kinds)}) in {bad_rows.size} row(s), "
            f"first at row {int(bad_rows[0])}"
        )
    # `+ 0.0` turns -0.0 into 0.0 so that rows equal as numbers are equal as rows.
    distinct = np.unique(array + 0.0, axis=0)
    if distinct.shape[0] < 3:
        raise TooFewPointsError(
            f"TwoNN needs at least 3 distinct points, got {distinct.shape[0]} "
            f"(from {array.shape[0]} rows after dropping exact duplicates)"
        )
    return distinct


def nearest_two_distances(points: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances from each row to its first and second nearest other rows.

    Candidates are found blockwise from `|x|^2 + |y|^2 - 2 x.y`; the two chosen
    distances are then recomputed from the coordinate differences, so they carry
    no cancellation error.

    Args:
        points: Float64 array of shape (N, D) with N >= 3 distinct rows.
        chunk_rows: Query rows per block (memory is about `chunk_rows x N` floats).

    Returns:
        `(r1, r2)`, each of shape (N,), with `r1 <= r2`.
    """
    num = points.shape[0]
    sq_norms = np.einsum("ij,ij->i", points, points)
    r1 = np.empty(num)
    r2 = np.empty(num)
    for start in range(0, num, chunk_rows):
        stop = min(start + chunk_rows, num)
        block = points[start:stop]
        sq = sq_norms[start:stop, None] + sq_norms[None, :] - 2.0 * (block @ points.T)
        rows = np.arange(stop - start)
        sq[rows, rows + start] = np.inf
        candidates = np.argpartition(sq, 1, axis=1)[:, :2]
        diffs = points[candidates] - block[:, None, :]
        dist = np.sort(np.sqrt(np.einsum("ijk,ijk->ij", diffs, diffs)), axis=1)
        r1[start:stop] = dist[:, 0]
        r2[start:stop] = dist[:, 1]
    return r1, r2


def _pareto_slope(mu: np.ndarray, discard_fraction: float) -> float:
    """Least-squares slope through the origin of `-log(1 - F)` against `log(mu)`."""
    mu = np.sort(mu)
    num = mu.size
    keep = min(num - 1, int(np.floor((1.0 - discard_fraction) * num)))
    cdf = np.arange(1, keep + 1) / num
    x = np.log(mu[:keep])
    y = -np.log1p(-cdf)
    denom = float(x @ x)
    if keep == 0 or denom == 0.0:
        raise ValueError(
            "TwoNN slope is undefined: every kept neighbour-distance ratio equals 1 "
            f"({num} distinct points, {keep} kept)"
        )
    return float(x @ y) / denom


def _plain_slope(distinct: np.ndarray, discard_fraction: float) -> float:
    r1, r2 = nearest_two_distances(distinct)
    return _pareto_slope(r2 / r1, discard_fraction)


@functools.lru_cache(maxsize=8192)
def reference_slope(num_points: int, dimension: int, discard_fraction: float = 0.1) -> float:
    """Mean plain TwoNN slope of `num_points` uniform points on the sphere `S^dimension`.

    Deterministic: the samples come from a generator seeded by the arguments.

    Args:
        num_points: Points per sample (at least 3).
        dimension: Intrinsic dimension `k` of the sphere, which lies in R^(k+1).
        discard_fraction: As in `twonn_dimension`.
    """
    rng = np.random.default_rng([num_points, dimension, round(discard_fraction * 1e6)])
    slopes = []
    for _ in range(REFERENCE_SAMPLES):
        sample = rng.standard_normal((num_points, dimension + 1))
        sample /= np.linalg.norm(sample, axis=1, keepdims=True)
        slopes.append(_plain_slope(sample, discard_fraction))
    return float(np.mean(slopes))


def _corrected(slope: float, num_points: int, discard_fraction: float) -> float:
    """Invert the reference curve at `slope` (see the module docstring)."""

    def ref(k: int) -> float:
        return reference_slope(num_points, k, discard_fraction)

    if slope <= ref(1):
        return slope / ref(1)
    low, high = 1, 2
    while ref(high) < slope:
        if high >= MAX_REFERENCE_DIMENSION:
            return slope * high / ref(high)
        low, high = high, min(2 * high, MAX_REFERENCE_DIMENSION)
    while high - low > 1:
        middle = (low + high) // 2
        if ref(middle) < slope:
            low = middle
        else:
            high = middle
    return low + (slope - ref(low)) / (ref(high) - ref(low))


def twonn_dimension(points: np.ndarray, discard_fraction: float = 0.1, *, corrected: bool = True) -> float:
    """Estimate the intrinsic dimension of a point cloud with TwoNN.

    Exact duplicate rows are dropped first. With the `N` ratios `mu` sorted in
    ascending order, the empirical CDF is `F(mu_i) = i / N` (`i = 1..N`); the
    `floor(discard_fraction * N)` largest ratios are discarded (always at least
    the largest, where `F = 1`), and the plain estimate is the least-squares
    slope through the origin of `-log(1 - F)` against `log(mu)`.

    Args:
        points: Array of shape (N, D), one point per row.
        discard_fraction: Fraction of the largest ratios left out of the fit, in [0, 1).
        corrected: Apply the finite-sample correction of the module docstring.

    Returns:
        The estimated intrinsic dimension.

    Raises:
        ValueError: `points` is not 2-D, holds non-finite values or fewer than 3
            distinct rows; `discard_fraction` is outside [0, 1); or every kept
            ratio equals 1, so the slope is undefined.
    """
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    distinct = _validated_points(points)
    slope = _plain_slope(distinct, discard_fraction)
    return _corrected(slope, distinct.shape[0], discard_fraction) if corrected else slope


def id_curve(
    states: Sequence[np.ndarray],
    discard_fraction: float = 0.1,
    *,
    corrected: bool = True,
    degenerate: float | None = None,
) -> np.ndarray:
    """TwoNN intrinsic dimension of each layer's point cloud.

    Args:
        states: One (N, D) array per layer (`N` and `D` may differ between layers).
        discard_fraction: Passed to `twonn_dimension`.
        corrected: Passed to `twonn_dimension`.
        degenerate: If not None, the value of a layer whose points hold fewer
            than 3 distinct rows (0.0: one or two points have dimension 0), instead
            of an error. The last token's value vectors at the first layer are one
            point when every text ends in the same prompt token.

    Returns:
        Float64 array of shape (len(states),), one estimate per layer.

    Raises:
        ValueError: `states` is empty, or a layer is invalid for `twonn_dimension`
            (the message names the layer).
    """
    if len(states) == 0:
        raise ValueError("states is empty: need at least one layer")
    out = np.empty(len(states))
    for layer, points in enumerate(states):
        try:
            out[layer] = twonn_dimension(points, discard_fraction, corrected=corrected)
        except TooFewPointsError as error:
            if degenerate is None:
                raise ValueError(f"layer {layer}: {error}") from error
            out[layer] = degenerate
        except ValueError as error:
            raise ValueError(f"layer {layer}: {error}") from error
    return out
