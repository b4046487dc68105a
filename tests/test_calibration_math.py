"""Numerical core of layer calibration: TwoNN intrinsic dimension and the selection rule."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from vaembed.calibration import (
    id_curve,
    nearest_two_distances,
    reference_slope,
    select_layers,
    stable_selection,
    twonn_dimension,
    window_width,
)

NUM_POINTS = 1000
AMBIENT = 100
SEEDS = range(5)


def gaussian_in_ambient(d: int, num: int = NUM_POINTS, ambient: int = AMBIENT, seed: int = 0) -> np.ndarray:
    """A d-dimensional standard Gaussian sample mapped into R^ambient by a random linear map."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((num, d))
    return latent @ rng.standard_normal((d, ambient))


def uniform_ball(d: int, num: int = NUM_POINTS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((num, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return directions * rng.random((num, 1)) ** (1.0 / d)


@functools.cache
def estimates(d: int, corrected: bool = True) -> np.ndarray:
    return np.array([twonn_dimension(gaussian_in_ambient(d, seed=s), corrected=corrected) for s in SEEDS])


# ---------------------------------------------------------------------------------------- TwoNN
# One estimate from N = 1000 points has a seed-to-seed spread of about 4% (the least-squares fit
# on the empirical CDF), so a single draw lands within 10% about 93% of the time; the accuracy
# requirement is checked on the mean of five draws, and every draw must be within 20%.
# The correction's reference curve comes from spheres; these checks use Gaussians and balls.


@pytest.mark.parametrize("d", range(2, 21))
def test_twonn_recovers_dimension_within_10_percent(d):
    values = estimates(d)
    assert abs(values.mean() - d) <= 0.1 * d, values
    assert np.all(np.abs(values - d) <= 0.2 * d), values


@pytest.mark.parametrize("d", [16, 20])
def test_plain_twonn_underestimates_high_dimensions(d):
    plain = estimates(d, corrected=False).mean()
    assert 0.7 * d < plain < 0.9 * d
    assert estimates(d).mean() > plain


@pytest.mark.parametrize("d", [6, 18])
def test_correction_holds_on_a_uniform_ball(d):
    values = [twonn_dimension(uniform_ball(d, seed=s)) for s in SEEDS]
    assert abs(np.mean(values) - d) <= 0.1 * d, values


def test_correction_is_increasing_and_deterministic():
    slopes = [reference_slope(300, k) for k in (2, 5, 10, 20, 40, 80)]
    assert all(a < b for a, b in zip(slopes[:-1], slopes[1:], strict=True))
    reference_slope.cache_clear()
    assert reference_slope(300, 20) == slopes[3]
    points = gaussian_in_ambient(12, num=300)
    assert twonn_dimension(points) == twonn_dimension(points)


def test_nearest_two_distances_match_brute_force():
    points = np.random.default_rng(1).standard_normal((53, 7))
    r1, r2 = nearest_two_distances(points, chunk_rows=8)
    full = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :2]
    np.testing.assert_allclose(r1, expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(r2, expected[:, 1], rtol=1e-12)


def test_duplicates_are_dropped():
    points = gaussian_in_ambient(5, num=400, ambient=20)
    doubled = np.concatenate([points, points[::-1]])
    assert twonn_dimension(doubled) == pytest.approx(twonn_dimension(points), rel=1e-12)


def test_integer_input_is_accepted():
    points = np.random.default_rng(2).integers(-1000, 1000, size=(200, 3))
    assert np.isfinite(twonn_dimension(points))


@pytest.mark.parametrize(
    ("points", "match"),
    [
        (np.zeros((2, 4)), "at least 3 distinct points, got 1"),
        (np.eye(3)[:2], "at least 3 distinct points, got 2"),
        (np.repeat(np.eye(3)[:2], 5, axis=0), "at least 3 distinct points, got 2 .*from 10 rows"),
        (np.arange(10.0), "2-D array.*got 1-D"),
        (np.zeros((4, 3, 2)), "2-D array.*got 3-D"),
        (np.zeros((5, 0)), "at least one feature column"),
    ],
)
def test_twonn_rejects_bad_shapes(points, match):
    with pytest.raises(ValueError, match=match):
        twonn_dimension(points)


@pytest.mark.parametrize(("value", "name"), [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_twonn_rejects_non_finite(value, name):
    points = np.random.default_rng(3).standard_normal((20, 4))
    points[7, 2] = value
    with pytest.raises(ValueError, match=f"non-finite values \\({name}\\).*first at row 7"):
        twonn_dimension(points)


def test_twonn_rejects_bad_discard_fraction():
    with pytest.raises(ValueError, match="discard_fraction"):
        twonn_dimension(np.eye(5), discard_fraction=1.0)


def test_id_curve_names_the_bad_layer():
    good = np.random.default_rng(4).standard_normal((30, 5))
    assert id_curve([good, good * 2]).shape == (2,)
    with pytest.raises(ValueError, match="layer 1: .*at least 3 distinct"):
        id_curve([good, np.zeros((30, 5))])


# -------------------------------------------------------------------------------- selection rule


def u_curve(num_layers: int, minimum: int) -> list[float]:
    return [float((k - minimum) ** 2 + 5) for k in range(num_layers)]


@pytest.mark.parametrize(("num_layers", "width"), [(6, 2), (18, 2), (24, 2), (30, 3)])
def test_window_width(num_layers, width):
    assert window_width(num_layers) == width


def test_u_shaped_curve_picks_window_at_minimum():
    assert select_layers(u_curve(30, 18)) == (18, 19, 20)


def test_minimum_near_the_end_shifts_window_left():
    assert select_layers(u_curve(30, 28)) == (27, 28, 29)


def test_monotone_decreasing_picks_last_layers():
    assert select_layers([30.0 - k for k in range(30)]) == (27, 28, 29)


def test_monotone_increasing_picks_first_layers_after_skip():
    assert select_layers([1.0 + k for k in range(30)]) == (6, 7, 8)  # skip = ceil(0.2 * 30) = 6
    assert select_layers([1.0 + k for k in range(24)]) == (5, 6)  # skip = ceil(4.8) = 5


def test_minimum_inside_skipped_layers_is_ignored():
    curve = u_curve(30, 3)
    assert select_layers(curve) == (6, 7, 8)


def test_shallow_dip_is_not_a_minimum():
    curve = [10.0] * 30
    curve[15], curve[20], curve[25] = 9.0, 9.2, 9.3  # 9.0 is not < 0.9 * 10
    assert select_layers(curve) == (15, 20, 25)
    curve[15] = 8.99
    assert select_layers(curve) == (15, 16, 17)


def test_dip_is_measured_against_the_smaller_end():
    curve = [20.0] * 30
    curve[12], curve[13], curve[20], curve[29] = 9.5, 9.6, 9.55, 10.0  # 9.5 >= 0.9 * min(20, 10)
    assert select_layers(curve) == (12, 13, 20)  # the three lowest, not a window
    curve[29] = 20.0  # now 9.5 < 0.9 * min(20, 20)
    assert select_layers(curve) == (12, 13, 14)


def test_explicit_width_and_skip_fraction():
    assert select_layers(u_curve(30, 18), width=5) == (18, 19, 20, 21, 22)
    assert select_layers([1.0 + k for k in range(10)], skip_fraction=0.0) == (0, 1)


@pytest.mark.parametrize(
    ("curve", "match"),
    [
        ([1.0, float("nan"), 2.0, 3.0], r"non-finite values at layers \[1\]"),
        ([1.0, 2.0, float("inf"), 3.0], r"non-finite values at layers \[2\]"),
        ([1.0, 2.0], "Too few layers"),
        ([], "Too few layers"),
        ([[1.0, 2.0], [3.0, 4.0]], "1-D"),
    ],
)
def test_select_layers_rejects_bad_curves(curve, match):
    with pytest.raises(ValueError, match=match):
        select_layers(curve)


# ------------------------------------------------------------------------------------ stability

U_DIMENSIONS = [14, 13, 11, 9, 6, 2, 6, 9, 11, 13]  # 10 layers: skip 2, width 2, minimum at layer 5


def synthetic_states(num: int = 300, ambient: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal((num, d)) @ rng.standard_normal((d, ambient)) for d in U_DIMENSIONS]


def test_stable_selection_finds_the_u_window():
    result = stable_selection(synthetic_states(), resamples=20, seed=0)
    assert result.layers == (5, 6)
    assert result.full_data_layers == (5, 6)
    assert result.frequency >= 0.8
    assert len(result.curve) == len(U_DIMENSIONS) and np.isfinite(result.curve).all()
    assert len(result.curve_std) == len(U_DIMENSIONS) and np.isfinite(result.curve_std).all()
    assert int(np.argmin(result.curve)) == 5
    assert sum(count for _, count in result.selections) == 20
    assert result.selections[0] == ((5, 6), round(result.frequency * 20))
    json.dumps(result.to_dict())


def test_stable_selection_is_deterministic_per_seed():
    states = synthetic_states(num=120, ambient=20)
    assert stable_selection(states, resamples=3, seed=5) == stable_selection(states, resamples=3, seed=5)


def test_stable_selection_rejects_bad_input():
    states = synthetic_states(num=50, ambient=20)
    with pytest.raises(ValueError, match="same number of texts"):
        stable_selection([*states[:-1], states[-1][:40]])
    with pytest.raises(ValueError, match="resamples"):
        stable_selection(states, resamples=0)
    with pytest.raises(ValueError, match="empty"):
        stable_selection([])


def test_each_half_is_chosen_by_the_same_vote_as_the_whole():
    rng = np.random.default_rng(0)  # flat, noisy curves: one curve per half and a vote per half disagree here
    states = [rng.standard_normal((60, 6)) @ rng.standard_normal((6, 20)) for _ in range(10)]
    whole = stable_selection(states, resamples=5, seed=0)
    alone = [stable_selection([layer[part::2] for layer in states], resamples=5, seed=0) for part in (0, 1)]
    assert whole.halves == (alone[0].layers, alone[1].layers)
    single = select_layers(id_curve([layer[0::2] for layer in states], degenerate=0.0))
    assert single != whole.halves[0]  # what the halves were before: the rule on one curve
