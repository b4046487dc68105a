"""Running layer calibration on a model: residuals per layer, ID curves, chosen layers.

Every calibration text (cut to `max_tokens` tokens, 96 by default, which
bounds the cost at N x 96 tokens) is run through the engine's own forward
pass, which records the last token's residual state after each layer. Each
layer's point cloud gets a TwoNN intrinsic dimension; the selection rule
(`selection.py`), repeated on subsamples of the texts, picks the layers.

Which prompt wraps the texts is a decision kept open (`prompts`):

- `"text"` (default, METHODS step 2 as written): the plain texts, one pass;
  every calibrated preset gets that choice.
- `"per-preset"`: one pass per distinct prompt of the calibrated presets (the
  plain text for `va` and `wva`, PromptEOL for `aligned-wva`, the compression
  prompt for `kv`); each preset gets its own prompt's choice.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

from vaembed.calibration.corpus import RECOMMENDED_MINIMUM, CalibrationCorpus, bundled_corpus, user_corpus
from vaembed.calibration.profile import CalibrationProfile, ModelIdentity, PromptCalibration, config_hash, weights_hash
from vaembed.calibration.selection import SKIP_FRACTION, SUBSAMPLE_FRACTION, stable_selection
from vaembed.calibration.twonn import id_curve
from vaembed.engine.forward_pass import PassPlan
from vaembed.engine.runner import Runner
from vaembed.recipes.presets import CALIBRATED_PRESETS, PRESET_RECIPES
from vaembed.recipes.prompts import PROMPTS, Prompt
from vaembed.recipes.readouts import READOUTS
from vaembed.recipes.recipe import ResolvedRecipe

__all__ = ["calibrate", "calibrate_prompts", "collect_residuals", "model_identity", "prompt_name"]

logger = logging.getLogger(__name__)

DISCARD_FRACTION = 0.1
DEFAULT_MAX_TOKENS = 96
CALIBRATION_BATCH = 8
"""Sequences per calibration pass (small batches of similar length ran fastest on CPU)."""
TEXT_PROMPT = "none"
PromptMode = Literal["text", "per-preset"]


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

    Args:
        runner: Supplies the model, tokenizer and forward passes.
        texts: The calibration texts.
        prompt: The template each text is wrapped in (as a document).
        max_tokens: Texts are cut so each input has at most this many tokens
            (prompt included); None uses the runner's `max_length`.
        batch_size: Sequences per forward pass.

    Returns:
        One float32 array of shape (len(texts), hidden size) per layer.

    Raises:
        FloatingPointError: The model produced NaN or Inf (the layer is named).
    """
    tokenizer = runner.tokenizer_for(runner.max_length if max_tokens is None else max_tokens)
    sequences, _ = tokenizer.encode(list(texts), prompt, "document", "truncate")
    num_layers = runner.num_layers
    recipe = ResolvedRecipe(prompt, READOUTS["hidden_last"], (0,))
    plan = PassPlan(recipe, num_layers, residual_layers=tuple(range(num_layers)))
    (readings,) = runner.read(sequences, [plan], batch_size=batch_size)
    return [readings.residuals[layer].numpy() for layer in range(num_layers)]


def calibrate_prompts(
    runner: Runner,
    texts: Sequence[str],
    prompts: dict[str, Prompt],
    *,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    resamples: int = 20,
    seed: int = 0,
    batch_size: int = CALIBRATION_BATCH,
) -> dict[str, PromptCalibration]:
    """Calibrate each named prompt on `texts` (see the module docstring)."""
    found = {}
    for name, prompt in prompts.items():
        states = collect_residuals(runner, texts, prompt, max_tokens=max_tokens, batch_size=batch_size)
        stable = stable_selection(states, resamples=resamples, seed=seed, skip_fraction=SKIP_FRACTION)
        plain = id_curve(states, DISCARD_FRACTION, corrected=False)
        found[name] = PromptCalibration(
            curve=stable.curve,
            plain_curve=tuple(float(v) for v in plain),
            curve_std=stable.curve_std,
            layers=stable.layers,
            frequency=stable.frequency,
        )
        logger.info(
            "calibrated prompt %s: layers %s (%.0f%% of subsamples)", name, stable.layers, 100 * stable.frequency
        )
    return found


def preset_prompts(mode: PromptMode) -> dict[str, Prompt]:
    """Map each calibrated preset to the prompt it is calibrated with."""
    if mode == "text":
        return dict.fromkeys(CALIBRATED_PRESETS, PROMPTS[TEXT_PROMPT])
    return {preset: PRESET_RECIPES[preset].prompt for preset in CALIBRATED_PRESETS}


def calibrate(
    runner: Runner,
    texts: Iterable[str] | None = None,
    *,
    n: int | None = None,
    prompts: PromptMode = "text",
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    resamples: int = 20,
    seed: int = 0,
    batch_size: int = CALIBRATION_BATCH,
) -> CalibrationProfile:
    """Calibrate the layers of every calibrated preset for this model.

    Args:
        runner: Runs the model that is calibrated.
        texts: The calibration texts (duplicates dropped); the bundled corpus when None.
        n: Use only the first `n` texts.
        prompts: `"text"` or `"per-preset"` (see the module docstring).
        max_tokens: Token budget per text; None for the runner's `max_length`.
        resamples: Subsamples for the stability of the choice.
        seed: Seed of the subsampling.
        batch_size: Sequences per forward pass.

    Raises:
        TypeError: A text is not a str.
        ValueError: Fewer than 3 distinct texts, a bad `n`, `prompts` or `max_tokens`.
    """
    if prompts not in ("text", "per-preset"):
        raise ValueError(f"prompts must be 'text' or 'per-preset', not {prompts!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2):
        raise ValueError(f"max_tokens must be an int >= 2 or None, not {max_tokens!r}")
    corpus: CalibrationCorpus = (bundled_corpus() if texts is None else user_corpus(texts)).head(n)
    if len(corpus.texts) < 3:
        raise ValueError(f"calibration needs at least 3 distinct texts, got {len(corpus.texts)}")
    if len(corpus.texts) < RECOMMENDED_MINIMUM:
        warnings.warn(
            f"calibrating on {len(corpus.texts)} texts; at least {RECOMMENDED_MINIMUM} give stable layer choices",
            stacklevel=2,
        )
    by_preset = {preset: prompt_name(prompt) for preset, prompt in preset_prompts(prompts).items()}
    chosen = {prompt_name(prompt): prompt for prompt in preset_prompts(prompts).values()}
    start = time.perf_counter()
    found = calibrate_prompts(
        runner, corpus.texts, chosen, max_tokens=max_tokens, resamples=resamples, seed=seed, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    estimator = {
        "name": "twonn",
        "residual": "last token, after each layer",
        "prompts": prompts,
        "max_tokens": max_tokens,
        "discard_fraction": DISCARD_FRACTION,
        "finite_sample_correction": "sphere reference",
        "skip_fraction": SKIP_FRACTION,
        "resamples": resamples,
        "subsample_fraction": SUBSAMPLE_FRACTION,
        "seed": seed,
    }
    return CalibrationProfile(
        model=model_identity(runner),
        corpus=corpus.describe(),
        estimator=estimator,
        prompts=found,
        presets={preset: found[name].layers for preset, name in by_preset.items()},
        seconds=round(seconds, 3),
    )
