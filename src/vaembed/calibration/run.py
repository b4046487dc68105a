"""Running layer calibration on a model: per-layer states, ID curves, chosen layers, their stability.

A calibration probe (`vaembed.calibration.probe`) decides what is measured:
which representation of each text at each layer (the last token's residual by
default), under which prompt, cut to how many tokens, and which rule turns a
TwoNN intrinsic-dimension curve into a window. Each distinct prompt is one
pass over the texts that reads every representation needed at every layer.
Stability is reported twice: the window chosen on 20 subsamples of 80% of the
texts (the most frequent wins), and the windows the same vote chooses on two
disjoint halves of the texts (even and odd positions: what calibrating on
either half alone chooses), which should agree within a layer.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from vaembed.calibration.corpus import RECOMMENDED_MINIMUM, CalibrationCorpus, bundled_corpus, user_corpus
from vaembed.calibration.probe import RESIDUAL, CalibrationProbe, collect_layer_states, get_probe, preset_readout
from vaembed.calibration.profile import CalibrationProfile, ModelIdentity, PromptCalibration, config_hash, weights_hash
from vaembed.calibration.selection import SKIP_FRACTION
from vaembed.calibration.stability import SUBSAMPLE_FRACTION, stable_selection
from vaembed.calibration.twonn import id_curve
from vaembed.engine.runner import Runner
from vaembed.recipes.presets import CALIBRATED_PRESETS
from vaembed.recipes.prompts import PROMPTS, Prompt

__all__ = ["calibrate", "calibrate_states", "collect_residuals", "model_identity", "prompt_name"]

logger = logging.getLogger(__name__)

DISCARD_FRACTION = 0.1
DEFAULT_MAX_TOKENS = 96
CALIBRATION_BATCH = 8
"""Sequences per calibration pass (small batches of similar length ran fastest on CPU)."""
TEXT_PROMPT = "none"


def prompt_name(prompt: Prompt) -> str:
    """The prompt's name in `PROMPTS`, or `custom-<hash>` for another prompt."""
    for name, known in PROMPTS.items():
        if known == prompt:
            return name
    return "custom-" + hashlib.sha256(repr(prompt).encode()).hexdigest()[:12]


def model_identity(runner: Runner) -> ModelIdentity:
    """The identity a profile of this runner's model carries."""
    model = runner.model
    return ModelIdentity(
        name=runner.name,
        family=str(model.config.model_type),
        config_hash=config_hash(model.config),
        weights_hash=weights_hash(model),
        num_layers=runner.num_layers,
    )


def collect_residuals(
    runner: Runner,
    texts: Sequence[str],
    prompt: Prompt,
    *,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    batch_size: int = CALIBRATION_BATCH,
) -> list[np.ndarray]:
    """Last-token residual state after each layer, for each text wrapped in `prompt`.

    Returns:
        One float32 array of shape (len(texts), hidden size) per layer.
    """
    states = collect_layer_states(runner, texts, prompt, {RESIDUAL: RESIDUAL}, max_tokens=max_tokens,
                                  batch_size=batch_size)  # fmt: skip
    return states[RESIDUAL]


def calibrate_states(
    states: Sequence[np.ndarray], rule: str = "interior-min", *, resamples: int = 20, seed: int = 0
) -> PromptCalibration:
    """One curve's calibration: the ID curve, the stable window, and the windows of two disjoint halves.

    Args:
        states: One (N, D) array of per-text vectors per layer.
        rule: A key of `vaembed.calibration.selection.RULES`.
        resamples: Subsamples for the stability of the choice.
        seed: Seed of the subsampling.
    """
    stable = stable_selection(states, resamples=resamples, seed=seed, skip_fraction=SKIP_FRACTION, rule=rule)
    plain = id_curve(states, DISCARD_FRACTION, corrected=False, degenerate=0.0)
    return PromptCalibration(
        curve=stable.curve,
        plain_curve=tuple(float(v) for v in plain),
        curve_std=stable.curve_std,
        layers=stable.layers,
        frequency=stable.frequency,
        halves=stable.halves,
    )


def _probe_of(probe: str | CalibrationProbe, prompts: str | None, max_tokens: object) -> CalibrationProbe:
    """The probe, with the older spellings (`prompts="text" | "per-preset"`, `max_tokens`) applied on top."""
    from dataclasses import replace

    chosen = get_probe(probe)
    if prompts is not None:
        if prompts not in ("text", "per-preset"):
            raise ValueError(f"prompts must be 'text' or 'per-preset', not {prompts!r}")
        chosen = replace(chosen, prompts="preset" if prompts == "per-preset" else "text")
    if max_tokens != "probe":
        chosen = replace(chosen, max_tokens=max_tokens)  # type: ignore[arg-type]
    return chosen


def calibrate(
    runner: Runner,
    texts: Iterable[str] | None = None,
    *,
    n: int | None = None,
    probe: str | CalibrationProbe = "default",
    prompts: str | None = None,
    max_tokens: int | None | str = "probe",
    resamples: int = 20,
    seed: int = 0,
    batch_size: int = CALIBRATION_BATCH,
) -> CalibrationProfile:
    """Calibrate the layers of every calibrated preset for this model.

    Args:
        runner: Runs the model that is calibrated.
        texts: The calibration texts (duplicates dropped); the bundled corpus when None.
        n: Use only the first `n` texts.
        probe: A name of `vaembed.calibration.probe.PROBES` (`"default"`, which is
            `"mean-residual"`; `"methods"`; `"kv-paper"`) or a `CalibrationProbe`.
        prompts: Overrides the probe's prompts: `"text"` or `"per-preset"` (each preset's own).
        max_tokens: Overrides the probe's token budget per text (None: the runner's `max_length`).
        resamples: Subsamples for the stability of the choice.
        seed: Seed of the subsampling.
        batch_size: Sequences per forward pass.

    Raises:
        TypeError: A text is not a str.
        ValueError: Fewer than 3 distinct texts, a bad `n`, probe, `prompts` or `max_tokens`.
    """
    chosen = _probe_of(probe, prompts, max_tokens)
    corpus: CalibrationCorpus = (bundled_corpus() if texts is None else user_corpus(texts)).head(n)
    if len(corpus.texts) < 3:
        raise ValueError(f"calibration needs at least 3 distinct texts, got {len(corpus.texts)}")
    if len(corpus.texts) < RECOMMENDED_MINIMUM:
        warnings.warn(
            f"calibrating on {len(corpus.texts)} texts; at least {RECOMMENDED_MINIMUM} give stable layer choices",
            stacklevel=2,
        )
    start = time.perf_counter()
    curves: dict[str, PromptCalibration] = {}
    for prompt in dict.fromkeys(chosen.prompt_name(preset) for preset in CALIBRATED_PRESETS):
        presets = [p for p in CALIBRATED_PRESETS if chosen.prompt_name(p) == prompt]
        wanted = {chosen.curve_name(p): preset_readout(p, chosen.representation) for p in presets}
        states = collect_layer_states(runner, corpus.texts, PROMPTS[prompt], wanted, max_tokens=chosen.max_tokens,
                                      batch_size=batch_size)  # fmt: skip
        for name, layer_states in states.items():
            curves[name] = calibrate_states(layer_states, chosen.rule, resamples=resamples, seed=seed)
            found = curves[name]
            logger.info("calibrated %s: layers %s (halves %s)", name, found.layers, found.halves)
    estimator = {
        "name": "twonn",
        "probe": chosen.describe(),
        "discard_fraction": DISCARD_FRACTION,
        "finite_sample_correction": "sphere reference",
        "skip_fraction": SKIP_FRACTION,
        "resamples": resamples,
        "subsample_fraction": SUBSAMPLE_FRACTION,
        "halves": "each half by the same vote over its own subsamples",
        "seed": seed,
    }
    return CalibrationProfile(
        model=model_identity(runner),
        corpus=corpus.describe(),
        estimator=estimator,
        prompts=curves,
        presets={preset: curves[chosen.curve_name(preset)].layers for preset in CALIBRATED_PRESETS},
        seconds=round(time.perf_counter() - start, 3),
    )
