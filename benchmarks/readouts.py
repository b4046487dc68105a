"""Every readout of every layer from as few forward passes as the recipes allow.

Presets that share a prompt and an intervention run the same forward pass, so a
quality benchmark reads all their readouts, at every layer, from one pass per
group (`Runner.read` with one plan per readout). The embedding of a preset at a layer set is then
the mean of its layers' pooled vectors, L2-normalised, which is what
`Embedder.encode` computes; `check_against_engine` asserts it on a sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vaembed import Embedder
from vaembed.calibration.statistics import STATISTICS_MAX_TOKENS
from vaembed.engine.forward_pass import PassPlan
from vaembed.recipes import READOUTS, Recipe, ResolvedRecipe, get_recipe

__all__ = ["Capture", "PassGroup", "Readings", "check_against_engine", "read_group"]

ALL = "all"
"""Read a readout at every layer (kept apart per layer)."""
CORPUS = "corpus"
"""The role of the bundled corpus's texts, read as documents cut to `STATISTICS_MAX_TOKENS` (statistics)."""


@dataclass(frozen=True)
class Capture:
    """One readout to capture in a group's pass.

    Attributes:
        name: A label (e.g. `"value/mean"`).
        readout: A key of `vaembed.READOUTS`.
        layers: `"all"` (every layer, kept apart), or `"final"`.
    """

    name: str
    readout: str
    layers: str = ALL


@dataclass(frozen=True)
class PassGroup:
    """Recipes that share one forward pass: the prompt and intervention of `recipe`, several readouts.

    Attributes:
        name: A label.
        recipe: Supplies the prompt and the intervention (its layers are concrete).
        captures: What to read from the pass.
    """

    name: str
    recipe: Recipe
    captures: tuple[Capture, ...]


@dataclass
class Readings:
    """What a group's passes gave: per role, per capture, per layer, one row per text.

    Attributes:
        texts: Per role, the texts in row order.
        vectors: `vectors[role][capture][layer]` is an (n, dim) float32 array;
            a `"final"` capture has the single key -1.
        seconds: Wall time of the group's passes.
        tokens: Tokens run (padding excluded).
    """

    texts: dict[str, list[str]]
    vectors: dict[str, dict[str, dict[int, np.ndarray]]] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0

    def raw(self, capture: str, layers: Sequence[int], role: str) -> np.ndarray:
        """The unnormalised embedding of every text of `role`: the mean of `layers` (-1 for a final capture)."""
        per_layer = self.vectors[role][capture]
        total = per_layer[layers[0]].astype(np.float64)
        for layer in layers[1:]:  # the engine's order: sum the read layers, then divide
            total = total + per_layer[layer]
        return total / len(layers)

    def embed(
        self, capture: str, layers: Sequence[int], transform: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> Callable[[list[str], str], np.ndarray]:
        """An embed function (texts, role) -> unit rows, optionally post-processed by `transform` before normalising."""
        index = {role: {text: i for i, text in enumerate(texts)} for role, texts in self.texts.items()}
        composed: dict[str, np.ndarray] = {}
        for role in self.texts:
            raw = self.raw(capture, layers, role)
            composed[role] = _unit(transform(raw) if transform is not None else raw)

        def embed(texts: list[str], role: str) -> np.ndarray:
            try:
                rows = [index[role][text] for text in texts]
            except KeyError as err:
                raise KeyError(f"text not read in this group's pass for role {role!r}: {str(err)[:60]}") from err
            return composed[role][rows]

        return embed


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _plans(group: PassGroup, num_layers: int, base: ResolvedRecipe) -> list[PassPlan]:
    plans = []
    for capture in group.captures:
        layers = tuple(range(num_layers)) if capture.layers == ALL else (num_layers - 1,)
        resolved = base.with_readout(READOUTS[capture.readout], layers)
        plans.append(PassPlan(resolved, num_layers, early_exit=True, keep_layers=capture.layers == ALL))
    return plans


def read_group(embedder: Embedder, group: PassGroup, texts: dict[str, list[str]], *, batch_size: int = 32) -> Readings:
    """Run a group's passes over the texts of each role and keep every capture.

    Args:
        embedder: Supplies the model, tokenizer and length policy.
        group: The shared prompt/intervention and the readouts to capture.
        texts: Per role (`"query"`, `"document"`), distinct texts.
        batch_size: Most sequences per pass (the engine's token budget also applies).

    Raises:
        FloatingPointError: The model produced NaN or Inf.
    """
    engine = embedder.with_recipe(group.recipe)
    plans = _plans(group, embedder.num_layers, engine.plan.recipe)
    readings = Readings(texts={role: list(items) for role, items in texts.items()})
    start = time.perf_counter()
    for role, items in readings.texts.items():
        if role == CORPUS:  # cut as the engine cuts the texts it takes post-processing statistics from
            tokenizer = engine.runner.tokenizer_for(STATISTICS_MAX_TOKENS)
            sequences, _ = tokenizer.encode(items, engine.recipe.prompt, "document", "truncate")
        else:
            sequences, _ = engine.tokenize(items, role=role)  # type: ignore[arg-type]
        if len(sequences) != len(items):
            raise ValueError("read_group needs one sequence per text: use long_text='truncate'")
        readings.tokens += sum(len(s.ids) for s in sequences)
        passes = engine.runner.read(sequences, plans, batch_size=batch_size)
        readings.vectors[role] = {
            capture.name: (
                {layer: part.numpy() for layer, part in read.per_layer.items()}
                if plan.keep_layers
                else {-1: read.vectors.numpy()}
            )
            for capture, plan, read in zip(group.captures, plans, passes, strict=True)
        }
    readings.seconds = time.perf_counter() - start
    return readings


def check_against_engine(
    embedder: Embedder,
    readings: Readings,
    capture: str,
    layers: Sequence[int],
    recipe: str | Recipe,
    preset_layers: object,
    *,
    postprocess: str = "none",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    sample: int = 4,
    atol: float = 1e-4,
) -> float:
    """Assert that a composed embedding equals `Embedder.encode` of the preset on a few texts of each role.

    With `postprocess`, the engine computes its own statistics and `transform`
    (the benchmark's, from the corpus rows of `readings`) must agree with them.

    Returns:
        The largest absolute difference seen.

    Raises:
        AssertionError: A difference above `atol`.
    """
    engine = embedder.with_recipe(get_recipe(recipe), layers=preset_layers, postprocess=postprocess)  # type: ignore[arg-type]
    embed = readings.embed(capture, layers, transform)
    worst = 0.0
    for role, texts in readings.texts.items():
        if role == CORPUS:
            continue
        chosen = texts[:sample]
        with torch.inference_mode():
            expected = engine.encode(chosen, role=role, batch_size=len(chosen))  # type: ignore[arg-type]
        worst = max(worst, float(np.abs(embed(chosen, role) - expected).max()))
    if worst > atol:
        raise AssertionError(f"{capture} at layers {list(layers)} differs from {recipe!r}.encode by {worst:.2e}")
    return worst
