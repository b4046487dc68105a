"""Supervised layer sweep: score every layer and every window of layers on a labelled dev set.

For a readout recipe the swept set is the readout's layers. One forward pass per
batch reads every layer at once (`PassPlan.keep_layers`); the embedding of a
layer set is then the mean of its layers' pooled vectors, normalised and
combined over chunks exactly as `Embedder.encode` does, so a sweep score equals
the score of encoding with that layer set, at the cost of a single encoding.

For a KV-rerouting recipe read at the final layer the swept set is the
rerouted layers, which change the pass itself: every candidate (each layer, and
each window of consecutive layers) needs an encoding of its own.

Layer specs are never resolved through `Recipe.resolve` (calibrated presets
carry a spec only a calibration profile can fill); the candidates are explicit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from vaembed.batching import combine_chunks
from vaembed.calibration.devset import DevSet, score_dev_set
from vaembed.forward_pass import PassPlan
from vaembed.prompts import Prompt, Role
from vaembed.recipe import KVReroute, Recipe, ResolvedRecipe, TokenPrepending, get_recipe, resolve_layers, window_width
from vaembed.tokenization import TokenSequence

if TYPE_CHECKING:
    from vaembed.embedder import Embedder

__all__ = ["SweepResult", "sweep_layers"]

Layers = tuple[int, ...]


@dataclass(frozen=True)
class SweepResult:
    """Scores of every layer and every window of layers on one dev set.

    Iterating over a result yields `best_layers`, so it can be passed wherever a
    layer set (a sequence of ints) is accepted, e.g. `Embedder(..., layers=result)`.

    Attributes:
        recipe: The recipe's name.
        readout: The readout, as `"source/pool"` (e.g. `"value/mean"`).
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


def _run(embedder: Embedder, plan: PassPlan, sequences: list[TokenSequence], batch_size: int) -> list[torch.Tensor]:
    """Per-sequence vectors of a plan: one (n, dim) tensor per read layer if it keeps layers, else one."""
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].ids))  # as Embedder.encode batches
    layers = plan.recipe.layers if plan.keep_layers else (None,)
    outputs: list[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        state = embedder.run_pass([sequences[i] for i in chosen], plan)
        for slot, layer in enumerate(layers):
            part = state.result() if layer is None else state.per_layer.get(layer)
            if part is None:
                raise RuntimeError(f"The forward pass did not capture layer {layer}; is the model supported?")
            part = part.float().cpu()
            if not bool(torch.isfinite(part).all()):
                where = "" if layer is None else f" at layer {layer}"
                raise FloatingPointError(f"The model produced NaN or Inf{where}")
            if slot == len(outputs):
                outputs.append(torch.empty((len(sequences), part.shape[1]), dtype=torch.float32))
            outputs[slot][chosen] = part
    return outputs


# ----------------------------------------------------------------------------------------- plans
def _explicit(spec: Any, num_layers: int, recipe: Recipe, what: str) -> Layers:
    try:
        return resolve_layers(spec, num_layers)
    except ValueError as err:
        raise ValueError(
            f"Recipe {recipe.name!r}: cannot sweep its readout layers while its {what} layers are {spec!r} ({err}); "
            f"give them explicitly"
        ) from err


def _bias(intervention: KVReroute) -> float:
    bias = float(intervention.bias)
    if math.isnan(bias) or bias == math.inf:
        raise ValueError(f"KVReroute bias must be finite or -inf, not {bias}")
    return bias


def _readout_plan(recipe: Recipe, num_layers: int) -> PassPlan:
    """A plan reading every layer at once, with the recipe's intervention kept."""
    resolved = ResolvedRecipe(recipe.prompt, recipe.readout, tuple(range(num_layers)))
    intervention = recipe.intervention
    if isinstance(intervention, KVReroute):
        layers = _explicit(intervention.layers, num_layers, recipe, "rerouted")
        resolved = replace(resolved, reroute_layers=layers, reroute_bias=_bias(intervention))
    elif isinstance(intervention, TokenPrepending):
        if recipe.prompt.placeholder is None:
            raise ValueError(f"Recipe {recipe.name!r}: TokenPrepending needs a prompt with a placeholder")
        resolved = replace(resolved, prepend_layers=_explicit(intervention.layers, num_layers, recipe, "prepending"))
    elif intervention is not None:
        raise TypeError(f"Unknown intervention {intervention!r}")
    return PassPlan(resolved, num_layers, keep_layers=True)


def _check_args(embedder: Embedder, dev: DevSet, recipe: str | Recipe | None, width: Any, batch_size: Any) -> Recipe:
    if not isinstance(dev, DevSet):
        raise TypeError(f"dev must be a DevSet (see load_dev_set), not {type(dev).__name__}")
    if recipe is not None and not isinstance(recipe, (str, Recipe)):
        raise TypeError(f"recipe must be a preset name, a Recipe or None, not {type(recipe).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    count = embedder.num_layers
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= count:
        raise ValueError(f"width must be an int in [1, {count}] (the model's layers), not {width!r}")
    return embedder.recipe if recipe is None else get_recipe(recipe)


# ----------------------------------------------------------------------------------------- sweep
def sweep_layers(
    embedder: Embedder,
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
    count = embedder.num_layers
    width = window_width(count) if width is None else width
    recipe = _check_args(embedder, dev, recipe, width, batch_size)
    layout = _layout(dev, recipe.prompt)
    sequences = [
        embedder.text_tokenizer.encode(list(texts), recipe.prompt, role, embedder.long_text)[0]
        for role, texts in layout.groups
    ]
    start_passes = embedder.forward_passes

    def score(vectors: list[torch.Tensor]) -> float:
        """Score per-sequence vectors (one tensor per text group), combined per text as `encode` does."""
        combined = [
            combine_chunks(group_sequences, group_vectors, len(texts), True)
            for group_sequences, group_vectors, (_, texts) in zip(sequences, vectors, layout.groups, strict=True)
        ]
        (first, first_rows), (second, second_rows) = layout.first, layout.second
        return score_dev_set(dev, combined[first][list(first_rows)], combined[second][list(second_rows)])

    intervention = recipe.intervention
    if isinstance(intervention, KVReroute) and recipe.layers == "final":
        swept = "reroute"
        resolved = ResolvedRecipe(recipe.prompt, recipe.readout, resolve_layers(recipe.layers, count))
        resolved = replace(resolved, reroute_bias=_bias(intervention))

        def evaluate(layers: Layers) -> float:
            plan = PassPlan(replace(resolved, reroute_layers=layers), count)
            return score([_run(embedder, plan, group, batch_size)[0] for group in sequences])

    else:
        swept = "readout"
        plan = _readout_plan(recipe, count)
        per_group = [_run(embedder, plan, group, batch_size) for group in sequences]

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
        readout=f"{recipe.readout.source}/{recipe.readout.pool}",
        metric=dev.metric,
        width=width,
        layer_scores=layer_scores,
        window_scores=window_scores,
        best_layers=tuple(range(best, best + width)),
        best_score=window_scores[best],
        passes=embedder.forward_passes - start_passes,
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
