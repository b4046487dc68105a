"""Recipes: prompt x intervention x readout x layers, and the named presets.

A recipe is model-independent: its layer sets are specs ("final", "fallback",
"early", explicit indices) that `Recipe.resolve` turns into concrete layer
indices for a model with a given depth. The spec "auto" stands for the layers a
calibration profile chose for the model; `Recipe.resolve` takes them as an
argument (the `Embedder` finds or computes the profile).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from vaembed.prompts import PROMPTS, Prompt

__all__ = [
    "Readout",
    "READOUTS",
    "KVReroute",
    "TokenPrepending",
    "Recipe",
    "ResolvedRecipe",
    "PRESET_RECIPES",
    "LayerSpec",
    "AUTO",
    "resolve_layers",
    "get_recipe",
]

Source = Literal["hidden", "value", "mixed", "attention"]
Pool = Literal["mean", "last", "hybrid"]
LayerSpec = str | int | Sequence[int]

AUTO = "auto"
"""The layer spec filled by layer calibration."""


@dataclass(frozen=True)
class Readout:
    """Where a readout reads the pass and how it pools over tokens.

    Attributes:
        source: `"hidden"`: output of a decoder layer (after the final norm for the
            last layer); `"value"`: value vectors `v` (before the GQA repeat);
            `"mixed"`: per-head weighted values `u` (input of `o_proj`);
            `"attention"`: attention output `a = o_proj(u)`.
        pool: `"mean"` over pooled tokens, `"last"` token, or `"hybrid"` (their average).
    """

    source: Source
    pool: Pool

    def __post_init__(self) -> None:
        if self.source not in ("hidden", "value", "mixed", "attention"):
            raise ValueError(f"Unknown readout source {self.source!r}")
        if self.pool not in ("mean", "last", "hybrid"):
            raise ValueError(f"Unknown readout pooling {self.pool!r}")


READOUTS: dict[str, Readout] = {
    "hidden_mean": Readout("hidden", "mean"),
    "hidden_last": Readout("hidden", "last"),
    "hidden_hybrid": Readout("hidden", "hybrid"),
    "value_mean": Readout("value", "mean"),
    "value_weighted": Readout("mixed", "last"),
    "attention_last": Readout("attention", "last"),
}


@dataclass(frozen=True)
class KVReroute:
    """KV-Embedding: the final token's key/value as a prefix every token may attend to.

    Attributes:
        layers: Layers whose attention is rerouted.
        bias: Added to the prefix column's pre-softmax logits; `-inf` disables it.
    """

    layers: LayerSpec = "kv-fallback"
    bias: float = 1.0


@dataclass(frozen=True)
class TokenPrepending:
    """Token Prepending: a placeholder's state is overwritten by the last token's.

    Attributes:
        layers: Layers at whose input the placeholder is overwritten.
    """

    layers: LayerSpec = "early"


Intervention = KVReroute | TokenPrepending | None


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe with concrete layer indices for one model."""

    prompt: Prompt
    readout: Readout
    layers: tuple[int, ...]
    reroute_layers: tuple[int, ...] = ()
    reroute_bias: float = 1.0
    prepend_layers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """One embedding method: prompt x intervention x readout x layers.

    Attributes:
        prompt: The prompt template (role-aware).
        readout: How the pass is read.
        layers: Readout layers: `"auto"` (calibrated), `"final"`, `"fallback"` (`[L//2, L)`), or indices.
        intervention: A change to the forward pass, or None.
        name: A label for reports.
    """

    prompt: Prompt = field(default_factory=Prompt)
    readout: Readout = field(default_factory=lambda: READOUTS["hidden_mean"])
    layers: LayerSpec = "final"
    intervention: Intervention = None
    name: str = "custom"

    def with_layers(self, layers: LayerSpec) -> Recipe:
        """Return a copy whose calibrated layer set is `layers`.

        For a KV-rerouting recipe whose readout is final, that is the rerouted
        layer set; otherwise it is the readout's layer set. Any iterable of
        indices is accepted (a layer sweep's result, for one).
        """
        if not isinstance(layers, (str, int)):
            layers = tuple(layers)
        if isinstance(self.intervention, KVReroute) and self.layers == "final":
            return replace(self, intervention=replace(self.intervention, layers=layers))
        return replace(self, layers=layers)

    @property
    def needs_calibration(self) -> bool:
        """Whether a layer set is `"auto"`."""
        specs = [self.layers]
        if isinstance(self.intervention, (KVReroute, TokenPrepending)):
            specs.append(self.intervention.layers)
        return any(isinstance(spec, str) and spec == AUTO for spec in specs)

    def resolve(self, num_layers: int, auto_layers: Sequence[int] | None = None) -> ResolvedRecipe:
        """Turn the layer specs into indices for a model with `num_layers` layers.

        Args:
            num_layers: The model's number of decoder layers.
            auto_layers: The calibrated layers that stand for `"auto"`.

        Raises:
            ValueError: A spec is invalid, or is `"auto"` and `auto_layers` is None.
        """

        def indices(spec: LayerSpec) -> tuple[int, ...]:
            if isinstance(spec, str) and spec == AUTO:
                if auto_layers is None:
                    raise ValueError(
                        f"Recipe {self.name!r} uses layers='auto', which a calibration profile fills: "
                        "build an Embedder (it calibrates once and caches the profile) or pass explicit layers"
                    )
                return resolve_layers(list(auto_layers), num_layers)
            return resolve_layers(spec, num_layers)

        resolved = ResolvedRecipe(self.prompt, self.readout, indices(self.layers))
        if isinstance(self.intervention, KVReroute):
            bias = float(self.intervention.bias)
            if math.isnan(bias) or bias == math.inf:
                raise ValueError(f"KVReroute bias must be finite or -inf, not {bias}")
            layers = indices(self.intervention.layers)
            return replace(resolved, reroute_layers=layers, reroute_bias=bias)
        if isinstance(self.intervention, TokenPrepending):
            if self.prompt.placeholder is None:
                raise ValueError("TokenPrepending needs a prompt with a placeholder")
            return replace(resolved, prepend_layers=indices(self.intervention.layers))
        if self.intervention is not None:
            raise TypeError(f"Unknown intervention {self.intervention!r}")
        return resolved


def window_width(num_layers: int) -> int:
    """Width of a calibrated window: `max(2, round(0.1 L))` layers."""
    return max(2, round(0.1 * num_layers))


def resolve_layers(spec: LayerSpec, num_layers: int) -> tuple[int, ...]:
    """Resolve a layer spec to sorted, distinct, non-negative layer indices.

    Args:
        spec: `"final"` (last layer), `"fallback"` (`[L//2, L)`), `"kv-fallback"`
            (a window of `max(2, round(0.1 L))` layers from `L//2`), `"early"`
            (the first quarter, at least one layer), an index, or a sequence of
            indices (negative ones count from the end).
        num_layers: The model's number of decoder layers `L`.

    Raises:
        ValueError: Unknown name, empty set, or an index out of range.
    """
    if isinstance(spec, str):
        half = num_layers // 2
        named = {
            "final": (num_layers - 1,),
            "fallback": tuple(range(half, num_layers)),
            "kv-fallback": tuple(range(half, min(num_layers, half + window_width(num_layers)))),
            "early": tuple(range(max(1, round(0.25 * num_layers)))),
        }
        if spec == AUTO:
            raise ValueError("layers='auto' needs a calibration profile; Recipe.resolve takes its layers")
        if spec not in named:
            raise ValueError(
                f"Unknown layer spec {spec!r}; use one of {sorted(named)}, a layer index or a list of indices"
            )
        return named[spec]
    indices = [spec] if isinstance(spec, int) else list(spec)
    if not indices:
        raise ValueError("The layer set is empty")
    out = set()
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"Layer indices must be ints, not {type(index).__name__}")
        if not -num_layers <= index < num_layers:
            raise ValueError(f"Layer {index} is out of range for a model with {num_layers} layers")
        out.add(index % num_layers)
    return tuple(sorted(out))


PRESET_RECIPES: dict[str, Recipe] = {
    "hs-mean": Recipe(PROMPTS["none"], READOUTS["hidden_mean"], "final", name="hs-mean"),
    "hs-last": Recipe(PROMPTS["none"], READOUTS["hidden_last"], "final", name="hs-last"),
    "prompteol": Recipe(PROMPTS["prompteol"], READOUTS["hidden_last"], "final", name="prompteol"),
    "echo": Recipe(PROMPTS["echo"], READOUTS["hidden_mean"], "final", name="echo"),
    "token-prepending": Recipe(
        PROMPTS["token-prepending"], READOUTS["hidden_last"], "final", TokenPrepending(), name="token-prepending"
    ),
    "va": Recipe(PROMPTS["none"], READOUTS["value_mean"], "fallback", name="va"),
    "wva": Recipe(PROMPTS["none"], READOUTS["value_weighted"], "fallback", name="wva"),
    "aligned-wva": Recipe(PROMPTS["prompteol"], READOUTS["attention_last"], "fallback", name="aligned-wva"),
    "kv": Recipe(PROMPTS["compress"], READOUTS["hidden_hybrid"], "final", KVReroute(layers=AUTO), name="kv"),
}

#: Presets whose layer set calibration can choose (`layers="auto"`); the profile
#: holds a set for each. `kv` uses it by default. The readouts `va`, `wva` and
#: `aligned-wva` default to the METHODS fallback window `[L//2, L)`, which scored
#: better than the calibrated window in the benchmarks (benchmarks/README.md);
#: pass `layers="auto"` for the calibrated one.
CALIBRATED_PRESETS = ("va", "wva", "aligned-wva", "kv")


def get_recipe(recipe: str | Recipe) -> Recipe:
    """Return a preset by name, or the recipe itself."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in PRESET_RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; presets are {', '.join(PRESET_RECIPES)}")
    return PRESET_RECIPES[recipe]
