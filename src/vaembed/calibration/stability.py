"""How stable a layer choice is: the rule on subsamples of the texts, and on two disjoint halves.

`sample_curves` computes the ID curves once (all texts, `resamples` subsamples
of 80%, and the same for the even- and odd-positioned halves); `stable_choice`
applies a rule to them: the window chosen most often over the subsamples wins
(ties go to the full-data choice). Each half's window is chosen by that same
vote over its own subsamples, so it is exactly what calibrating on that half
alone (with the same `resamples` and `seed`) would choose. The curves do not
depend on the rule, so several rules can be compared on one sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from vaembed.calibration.selection import SKIP_FRACTION, select_window
from vaembed.calibration.twonn import id_curve

__all__ = [
    "SUBSAMPLE_FRACTION",
    "CurveSamples",
    "StableSelection",
    "sample_curves",
    "stable_choice",
    "stable_selection",
]

SUBSAMPLE_FRACTION = 0.8
"""Fraction of the texts drawn (without replacement) by each resample."""

Selection = tuple[int, ...]


@dataclass(frozen=True)
class CurveSamples:
    """ID curves of one set of per-layer states.

    Attributes:
        full: The curve on every text.
        subsamples: (resamples, L) curves on random 80% subsamples.
        halves: The same samples of the even- and odd-positioned texts (which carry
            no halves of their own), or None when there are fewer than 6 texts.
    """

    full: np.ndarray
    subsamples: np.ndarray
    halves: tuple[CurveSamples, CurveSamples] | None = None


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
        halves: The selections (by the same vote) on the two disjoint halves of the texts.
    """

    curve: tuple[float, ...]
    curve_std: tuple[float, ...]
    layers: Selection
    frequency: float
    full_data_layers: Selection
    selections: tuple[tuple[Selection, int], ...]
    halves: tuple[Selection, Selection] = ((), ())

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists)."""
        return asdict(self)


def sample_curves(
    states: Sequence[np.ndarray], *, resamples: int = 20, seed: int = 0, halves: bool = True
) -> CurveSamples:
    """The ID curves `stable_choice` needs (layers of fewer than 3 distinct points get 0).

    Every resample draws `max(3, round(0.8 N))` distinct texts without
    replacement and uses them at every layer. (Subsampling rather than the
    bootstrap: TwoNN drops duplicate rows, so bootstrap samples would differ in
    size and carry ties at distance zero.)

    Args:
        states: `states[l]` is an (N, D) array of per-text vectors at layer `l`; `N`
            must be the same for every layer.
        resamples: Number of subsamples, at least 1.
        seed: Seed of the resampling generator (each half restarts it, as a
            calibration on that half alone would).
        halves: Also sample the two disjoint halves (when there are at least 6 texts).

    Raises:
        ValueError: No layers, layers with different text counts, fewer than 3
            texts, or `resamples < 1`.
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
    rng = np.random.default_rng(seed)
    size = max(3, round(SUBSAMPLE_FRACTION * num))
    picks = [np.sort(rng.choice(num, size=size, replace=False)) for _ in range(resamples)]
    split = None
    if halves and num >= 6:
        first, second = ([layer[part::2] for layer in arrays] for part in (0, 1))
        split = (
            sample_curves(first, resamples=resamples, seed=seed, halves=False),
            sample_curves(second, resamples=resamples, seed=seed, halves=False),
        )
    return CurveSamples(
        full=id_curve(arrays, degenerate=0.0),
        subsamples=np.stack([id_curve([layer[idx] for layer in arrays], degenerate=0.0) for idx in picks]),
        halves=split,
    )


def stable_choice(
    samples: CurveSamples, rule: str = "interior-min", *, skip_fraction: float = SKIP_FRACTION, width: int | None = None
) -> StableSelection:
    """Apply a rule to the curves of `sample_curves` (see the module docstring)."""

    def choose(curve: np.ndarray) -> Selection:
        return select_window(curve, rule, skip_fraction=skip_fraction, width=width)

    full = choose(samples.full)
    tally: Counter[Selection] = Counter(choose(curve) for curve in samples.subsamples)
    top = max(tally.values())
    tied = [sel for sel, count in tally.items() if count == top]  # insertion order = first seen
    layers = full if full in tied else tied[0]
    resamples = len(samples.subsamples)
    std = samples.subsamples.std(axis=0, ddof=1) if resamples > 1 else np.zeros(samples.full.size)
    halves = (layers, layers)
    if samples.halves is not None:
        first, second = (stable_choice(half, rule, skip_fraction=skip_fraction, width=width) for half in samples.halves)
        halves = (first.layers, second.layers)
    return StableSelection(
        curve=tuple(float(v) for v in samples.full),
        curve_std=tuple(float(v) for v in std),
        layers=layers,
        frequency=top / resamples,
        full_data_layers=full,
        selections=tuple(sorted(tally.items(), key=lambda item: (-item[1], item[0]))),
        halves=halves,
    )


def stable_selection(
    states: Sequence[np.ndarray],
    *,
    resamples: int = 20,
    seed: int = 0,
    skip_fraction: float = SKIP_FRACTION,
    width: int | None = None,
    rule: str = "interior-min",
) -> StableSelection:
    """Select layers on the full data, on random subsamples and on two disjoint halves of the texts.

    Args:
        states: `states[l]` is an (N, D) array of per-text vectors at layer `l`.
        resamples: Number of subsamples, at least 1.
        seed: Seed of the resampling generator.
        skip_fraction: Passed to the rule.
        width: Passed to the rule.
        rule: A key of `vaembed.calibration.selection.RULES`.

    Raises:
        ValueError: See `sample_curves`, and any error of the rule.
    """
    samples = sample_curves(states, resamples=resamples, seed=seed)
    return stable_choice(samples, rule, skip_fraction=skip_fraction, width=width)
