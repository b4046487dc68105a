"""Supervised layer sweep: score every layer and every window of layers on a labelled dev set.

For a readout recipe the swept set is the readout's layers. One forward pass per
batch reads every layer at once (`PassPlan.keep_layers`); the embedding of a
layer set is then the mean of its layers' pooled vectors, normalised and
combined over chunks exactly as `Embedder.encode` does, so a sweep score equals
the score of encoding with that layer set and `postprocess="none"`, at the
cost of a single encoding. Sweeps score raw vectors: post-processing would need
the bundled-corpus statistics of every candidate layer set.

When `layers=` sets a recipe's intervention layers (`Recipe.layers_option_target`:
KV rerouting read at the final layer) the swept set is the rerouted layers,
which change the pass itself: every candidate (each layer, and each window of
consecutive layers) needs an encoding of its own.

The swept layer set is replaced by each explicit candidate; the other set must
be explicit (a spec such as `"auto"` there cannot be swept around).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from vaembed.calibration.devset import DevSet, score_dev_set
from vaembed.engine.batching import combine_chunks
from vaembed.engine.forward_pass import PassPlan
from vaembed.engine.runner import Runner
from vaembed.engine.tokenization import LongTextPolicy
from vaembed.recipes.layers import window_width
from vaembed.recipes.presets import get_recipe
from vaembed.recipes.prompts import Prompt, Role
from vaembed.recipes.recipe import Recipe

__all__ = ["SweepResult", "sweep_layers"]

Layers = tuple[int, ...]


class _Engine(Protocol):
    """What a sweep needs of an `Embedder`."""

    runner: Runner
    recipe: Recipe
    long_text: LongTextPolicy


@dataclass(frozen=True)
class SweepResult:
    """Scores of every layer and every window of layers on one dev set.

    Iterating over a result yields `best_layers`, so it can be passed wherever a
    layer set (a sequence of ints) is accepted, e.g. `Embedder(..., layers=result)`.

    Attributes:
        recipe: The recipe's name.
        readout: The readout's name (e.g. `"value_mean"`).
        metric: `"spearman"` or `"ndcg@10"`.
        width: Number of consecutive layers in a window.
        layer_scores: The score of each single layer.
        window_scores: The score of the window starting at each layer (`L - width + 1` of them).
        best_layers: The best window (ties go to the earlier start).
        best_score: Its score.
        passes: Forward passes the sweep ran.
        swept: `"readout"` (readout layers) or `"reroute"` (KV-rerouted layers).
        dev_set: The dev set's name.
    """

    recipe: str
    readout: str
    metric: str
    width: int
    layer_scores: tuple[float, ...]
    window_scores: tuple[float, ...]
    best_layers: Layers
    best_score: float
    passes: int
    swept: str = "readout"
    dev_set: str = ""

    def __post_init__(self) -> None:
        count = len(self.layer_scores)
        if not 1 <= self.width <= count:
            raise ValueError(f"width must be in [1, {count}] (the number of layers), got {self.width}")
        if len(self.window_scores) != count - self.width + 1:
            raise ValueError(
                f"window_scores must have {count - self.width + 1} entries for {count} layers and width "
                f"{self.width}, got {len(self.window_scores)}"
            )
        if len(self.best_layers) != self.width or not all(0 <= layer < count for layer in self.best_layers):
            raise ValueError(f"best_layers must be {self.width} layers in [0, {count}), got {self.best_layers}")

    @property
    def num_layers(self) -> int:
        """Number of layers swept (the model's depth)."""
        return len(self.layer_scores)

    @property
    def label(self) -> str:
        """`recipe/readout`, for legends and reports."""
        return f"{self.recipe}/{self.readout}"

    def __iter__(self) -> Iterator[int]:
        return iter(self.best_layers)

    def __len__(self) -> int:
        return len(self.best_layers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def table(self) -> str:
        """A printable table: each layer's score and that of the window starting there; best window marked."""
        what = "rerouted layers" if self.swept == "reroute" else "readout layers"
        lines = [
            f"Sweep of {what} for {self.label} on {self.dev_set or 'the dev set'} ({self.metric}, "
            f"windows of {self.width}, {self.passes} forward passes)",
            f"{'layer':>5}  {'single':>8}  {'window':>8}",
        ]
        start = self.best_layers[0]
        for layer, score in enumerate(self.layer_scores):
            window = f"{self.window_scores[layer]:8.4f}" if layer < len(self.window_scores) else f"{'-':>8}"
            mark = ""
            if layer in self.best_layers:
                mark = "  * best window" if layer == start else "  *"
            lines.append(f"{layer:>5}  {score:8.4f}  {window}{mark}")
        span = f"{start}-{self.best_layers[-1]}" if self.width > 1 else str(start)
        lines.append(f"Best window: layers {span} ({self.metric} {self.best_score:.4f})")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- texts
@dataclass(frozen=True)
class _Layout:
    """Distinct texts to encode, grouped by template, and where each dev-set side finds its rows."""

    groups: tuple[tuple[Role, tuple[str, ...]], ...]
    first: tuple[int, tuple[int, ...]]
    second: tuple[int, tuple[int, ...]]


def _layout(dev: DevSet, prompt: Prompt) -> _Layout:
    if dev.kind == "pairs":
        sides: list[tuple[Role, list[str]]] = [
            ("document", [pair[0] for pair in dev.pairs]),
            ("document", [pair[1] for pair in dev.pairs]),
        ]
    else:
        sides = [("query", list(dev.queries)), ("document", list(dev.documents))]
    by_template: dict[str, int] = {}
    groups: list[tuple[Role, dict[str, int]]] = []
    placed = []
    for role, texts in sides:
        template = prompt.template(role)  # roles with one template tokenize alike: encode once
        if template not in by_template:
            by_template[template] = len(groups)
            groups.append((role, {}))
        group, index = by_template[template], groups[by_template[template]][1]
        placed.append((group, tuple(index.setdefault(text, len(index)) for text in texts)))
    return _Layout(tuple((role, tuple(index)) for role, index in groups), placed[0], placed[1])


# ----------------------------------------------------------------------------------------- plans
def _readout_plan(recipe: Recipe, num_layers: int) -> PassPlan:
    """A plan reading every layer at once, with the recipe's intervention kept."""
    try:
        resolved = recipe.with_layers(tuple(range(num_layers))).resolve(num_layers)
    except ValueError as err:
        raise ValueError(
            f"Recipe {recipe.name!r}: cannot sweep its readout layers while its intervention's layers are "
            f"{recipe.intervention.layers!r} ({err}); give them explicitly"  # type: ignore[union-attr]
        ) from err
    return PassPlan(resolved, num_layers, keep_layers=True)


def _check_args(engine: _Engine, dev: DevSet, recipe: str | Recipe | None, width: Any, batch_size: Any) -> Recipe:
    if not isinstance(dev, DevSet):
        raise TypeError(f"dev must be a DevSet (see load_dev_set), not {type(dev).__name__}")
    if recipe is not None and not isinstance(recipe, (str, Recipe)):
        raise TypeError(f"recipe must be a preset name, a Recipe or None, not {type(recipe).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    count = engine.runner.num_layers
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= count:
        raise ValueError(f"width must be an int in [1, {count}] (the model's layers), not {width!r}")
    return engine.recipe if recipe is None else get_recipe(recipe)


# ----------------------------------------------------------------------------------------- sweep
def sweep_layers(
    embedder: _Engine,
    dev: DevSet,
    recipe: str | Recipe | None = None,
    *,
    width: int | None = None,
    batch_size: int = 16,
) -> SweepResult:
    """Score every layer and every window of `width` consecutive layers of a recipe on a dev set.

    Pairs are embedded with the document prompt; retrieval queries with the
    query prompt and documents with the document prompt. Long texts follow the
    embedder's `long_text` policy (truncation is silent here).

    Args:
        embedder: Supplies the model, tokenizer and length policy.
        dev: The labelled dev set.
        recipe: A preset name or a `Recipe`; default the embedder's. Its own
            swept layer set is ignored.
        width: Window width; default `max(2, round(0.1 L))`.
        batch_size: Sequences per forward pass.

    Returns:
        The scores and the best window. A readout sweep holds every layer's
        pooled vectors of the dev texts in memory (L x sequences x dim floats).

    Raises:
        TypeError: `dev` is not a `DevSet`, or `recipe` is of the wrong type.
        ValueError: Bad `width` or `batch_size`, an unknown preset, or an
            intervention whose layers are not explicit for a readout sweep.
        FloatingPointError: The model produced NaN or Inf.
    """
    runner = embedder.runner
    count = runner.num_layers
    width = window_width(count) if width is None else width
    recipe = _check_args(embedder, dev, recipe, width, batch_size)
    layout = _layout(dev, recipe.prompt)
    sequences = [
        runner.text_tokenizer.encode(list(texts), recipe.prompt, role, embedder.long_text)[0]
        for role, texts in layout.groups
    ]
    start_passes = runner.forward_passes

    def score(vectors: list[torch.Tensor]) -> float:
        """Score per-sequence vectors (one tensor per text group), combined per text as `encode` does."""
        combined = [
            combine_chunks(group_sequences, group_vectors, len(texts), True)
            for group_sequences, group_vectors, (_, texts) in zip(sequences, vectors, layout.groups, strict=True)
        ]
        (first, first_rows), (second, second_rows) = layout.first, layout.second
        return score_dev_set(dev, combined[first][list(first_rows)], combined[second][list(second_rows)])

    if recipe.layers_option_target == "intervention":
        swept = "reroute"

        def evaluate(layers: Layers) -> float:
            plan = PassPlan(recipe.with_layers(layers).resolve(count), count)
            return score([runner.read(group, [plan], batch_size=batch_size)[0].vectors for group in sequences])

    else:
        swept = "readout"
        plan = _readout_plan(recipe, count)
        per_group = [runner.read(group, [plan], batch_size=batch_size)[0].per_layer for group in sequences]

        def evaluate(layers: Layers) -> float:
            means = []
            for per_layer in per_group:
                total = per_layer[layers[0]]
                for layer in layers[1:]:  # the engine's order: sum the read layers, then divide
                    total = total + per_layer[layer]
                means.append(total / len(layers))
            return score(means)

    scores = _memoised(evaluate)
    layer_scores = tuple(scores((layer,)) for layer in range(count))
    window_scores = tuple(scores(tuple(range(s, s + width))) for s in range(count - width + 1))
    best = max(range(len(window_scores)), key=lambda s: (window_scores[s], -s))
    return SweepResult(
        recipe=recipe.name,
        readout=recipe.readout.name,
        metric=dev.metric,
        width=width,
        layer_scores=layer_scores,
        window_scores=window_scores,
        best_layers=tuple(range(best, best + width)),
        best_score=window_scores[best],
        passes=runner.forward_passes - start_passes,
        swept=swept,
        dev_set=dev.name,
    )


def _memoised(evaluate: Callable[[Layers], float]) -> Callable[[Layers], float]:
    """Score each distinct layer set once (a window of width 1 is a single layer)."""
    cache: dict[Layers, float] = {}

    def scores(layers: Layers) -> float:
        if layers not in cache:
            cache[layers] = float(evaluate(layers))
        return cache[layers]

    return scores
