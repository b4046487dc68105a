"""A recipe: prompt x intervention x readout x layers.

A recipe is model-independent: its layer sets are specs (`vaembed.recipes.layers`)
that `Recipe.resolve` turns into indices for a model of a given depth. The spec
`"auto"` stands for the layers a calibration profile chose; `Recipe.resolve`
takes them as an argument (the `Embedder` finds or computes the profile).

Which layer set the `layers=` option (and calibration) sets is defined once,
by `Recipe.layers_option_target`: the readout's layers, except for a recipe
that reads only the final layer under an intervention that follows the option
(KV rerouting), whose rerouted layers it sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vaembed.recipes.interventions import Intervention, describe_intervention
from vaembed.recipes.layers import LayerSpec, is_auto, resolve_layers
from vaembed.recipes.postprocess import PostProcess, check_postprocess
from vaembed.recipes.prompts import Prompt
from vaembed.recipes.readouts import READOUTS, Readout, get_readout

__all__ = ["LayersTarget", "Recipe", "ResolvedRecipe"]

LayersTarget = Literal["readout", "intervention"]


@dataclass(frozen=True)
class ResolvedRecipe:
    """A recipe with concrete layer indices for one model.

    Attributes:
        prompt: The prompt template.
        readout: The readout.
        layers: The readout's layers.
        intervention: The intervention with concrete layers, or None.
        layers_target: Which of the two layer sets the `layers=` option sets.
    """

    prompt: Prompt
    readout: Readout
    layers: tuple[int, ...]
    intervention: Intervention | None = None
    layers_target: LayersTarget = "readout"

    @property
    def option_layers(self) -> tuple[int, ...]:
        """The concrete layers the `layers=` option sets (see `Recipe.layers_option_target`)."""
        if self.layers_target == "intervention" and self.intervention is not None:
            return tuple(self.intervention.layers)  # type: ignore[arg-type]
        return self.layers

    def with_readout(self, readout: Readout, layers: Sequence[int]) -> ResolvedRecipe:
        """The same pass (prompt and intervention) read by another readout at other layers."""
        return replace(self, readout=readout, layers=tuple(layers), layers_target="readout")


@dataclass(frozen=True)
class Recipe:
    """One embedding method: prompt x intervention x readout x layers.

    Attributes:
        prompt: The prompt template (role-aware).
        readout: How the pass is read: a `Readout` or a registered name (`vaembed.READOUTS`).
        layers: Readout layers: `"auto"` (calibrated), `"final"`, `"fallback"`
            (`[L//2, L)`), `"kv-fallback"`, `"early"`, or indices.
        intervention: A change to the forward pass (`KVReroute`, `TokenPrepending`), or None.
        name: A label for reports and calibration profiles.
        postprocess: `"none"`, `"center"` or `"standardize"` with the model's statistics over
            the bundled corpus (`vaembed.recipes.postprocess`), before L2 normalisation.
    """

    prompt: Prompt = field(default_factory=Prompt)
    readout: Readout = field(default_factory=lambda: READOUTS["hidden_mean"])
    layers: LayerSpec = "final"
    intervention: Intervention | None = None
    name: str = "custom"
    postprocess: PostProcess = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, Prompt):
            raise TypeError(f"prompt must be a Prompt, not {type(self.prompt).__name__}")
        object.__setattr__(self, "readout", get_readout(self.readout))
        if self.intervention is not None and not isinstance(self.intervention, Intervention):
            raise TypeError(f"intervention must be an Intervention or None, not {type(self.intervention).__name__}")
        if not isinstance(self.layers, (str, int)):
            object.__setattr__(self, "layers", tuple(self.layers))
        check_postprocess(self.postprocess)

    @property
    def layers_option_target(self) -> LayersTarget:
        """Which layer set `layers=` and calibration set: `"readout"` or `"intervention"`."""
        follows = self.intervention is not None and self.intervention.follows_layers_option
        final_only = isinstance(self.layers, str) and self.layers == "final"
        return "intervention" if follows and final_only else "readout"

    @property
    def option_layers(self) -> LayerSpec:
        """The spec of the layer set `layers=` sets."""
        if self.layers_option_target == "intervention":
            return self.intervention.layers  # type: ignore[union-attr]
        return self.layers

    def with_layers(self, layers: LayerSpec) -> Recipe:
        """Return a copy whose `layers_option_target` set is `layers`.

        Any iterable of indices is accepted (a layer sweep's result, for one).
        """
        if not isinstance(layers, (str, int)):
            layers = tuple(layers)
        if self.layers_option_target == "intervention":
            return replace(self, intervention=replace(self.intervention, layers=layers))  # type: ignore[type-var]
        return replace(self, layers=layers)

    def with_postprocess(self, postprocess: PostProcess) -> Recipe:
        """Return a copy with another post-processing mode.

        Raises:
            ValueError: An unknown mode.
        """
        return replace(self, postprocess=check_postprocess(postprocess))

    @property
    def needs_calibration(self) -> bool:
        """Whether a layer set is `"auto"`."""
        specs = [self.layers] + ([self.intervention.layers] if self.intervention is not None else [])
        return any(is_auto(spec) for spec in specs)

    def resolve(self, num_layers: int, auto_layers: Sequence[int] | None = None) -> ResolvedRecipe:
        """Turn the layer specs into indices for a model with `num_layers` layers.

        Args:
            num_layers: The model's number of decoder layers.
            auto_layers: The calibrated layers that stand for `"auto"`.

        Raises:
            ValueError: A spec is invalid, is `"auto"` and `auto_layers` is None,
                or the intervention does not fit the prompt.
        """

        def indices(spec: LayerSpec) -> tuple[int, ...]:
            if is_auto(spec):
                if auto_layers is None:
                    raise ValueError(
                        f"Recipe {self.name!r} uses layers='auto', which a calibration profile fills: "
                        "build an Embedder (it calibrates once and caches the profile) or pass explicit layers"
                    )
                return resolve_layers(list(auto_layers), num_layers)
            return resolve_layers(spec, num_layers)

        intervention = None
        if self.intervention is not None:
            intervention = self.intervention.resolve(indices(self.intervention.layers), self.prompt)
        return ResolvedRecipe(self.prompt, self.readout, indices(self.layers), intervention, self.layers_option_target)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: name, prompt templates, readout, layer specs, intervention."""
        layers = list(self.layers) if isinstance(self.layers, tuple) else self.layers
        return {
            "name": self.name,
            "prompt": {"document": self.prompt.document, "query": self.prompt.template("query")},
            "readout": self.readout.name,
            "layers": layers,
            "intervention": describe_intervention(self.intervention),
            "postprocess": self.postprocess,
        }
