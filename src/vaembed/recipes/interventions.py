"""Interventions: changes a recipe makes to the forward pass itself.

An intervention is a frozen dataclass with a `layers` spec. `resolve` checks it
against the recipe's prompt and returns a copy with concrete layer indices; the
engine then calls its hooks on every layer of a pass:

- `layer_input(layer, hidden, positions)`: may replace the residual stream
  entering a layer (Token Prepending overwrites the placeholder);
- `attention(layer, query, key, value, mask, positions, attend)`: may compute
  a layer's attention itself, with the engine's `attend` kernel, which can
  prepend key/value columns every query sees (KV-Embedding's rerouting).

Each hook is called only on the intervention's own layers. A new intervention
is one subclass (here or in your code), registered with `register_intervention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

import torch

from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.pooling import TokenPositions
from vaembed.recipes.prompts import Prompt

__all__ = [
    "INTERVENTIONS",
    "Attend",
    "Intervention",
    "KVReroute",
    "TokenPrepending",
    "describe_intervention",
    "register_intervention",
]


class Attend(Protocol):
    """The engine's attention kernel, handed to `Intervention.attention`.

    Returns the per-head weighted values `u`, (B, T, H, d). `prefix_key` and
    `prefix_value` (B, G, P, d) are extra key/value columns that every query
    position may attend to (the causal mask, padding and sliding windows do not
    hide them), with `prefix_bias` added to their pre-softmax logits.
    """

    def __call__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        prefix_key: torch.Tensor | None = None,
        prefix_value: torch.Tensor | None = None,
        prefix_bias: float = 0.0,
    ) -> torch.Tensor:
        """Attend; see the class docstring."""
        ...


@dataclass(frozen=True)
class Intervention:
    """Base class of interventions (see the module docstring).

    Attributes:
        layers: The layers it acts on: a spec until `resolve`, then indices.
    """

    name: ClassVar[str] = "intervention"
    follows_layers_option: ClassVar[bool] = False
    """If True and the recipe reads only the final layer, `layers=` and calibration set this intervention's layers."""

    layers: LayerSpec = "early"

    def __post_init__(self) -> None:
        if not isinstance(self.layers, (str, int)):
            object.__setattr__(self, "layers", tuple(self.layers))  # hashable, comparable

    def resolve(self, layers: tuple[int, ...], prompt: Prompt) -> Intervention:
        """Return a copy acting on the concrete `layers`, checked against the recipe's prompt.

        Raises:
            ValueError: The intervention cannot work with this prompt.
        """
        return replace(self, layers=tuple(layers))

    def layer_input(self, layer: int, hidden: torch.Tensor, positions: TokenPositions) -> torch.Tensor:
        """The residual stream (B, T, D) entering `layer`; default unchanged."""
        return hidden

    def attention(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        positions: TokenPositions,
        attend: Attend,
    ) -> torch.Tensor | None:
        """This layer's per-head weighted values (B, T, H, d), or None for plain attention."""
        return None


INTERVENTIONS: dict[str, type[Intervention]] = {}
"""Intervention classes by name."""


def register_intervention(cls: type[Intervention]) -> type[Intervention]:
    """Class decorator: register an intervention class under its `name`.

    Raises:
        TypeError: `cls` is not an `Intervention` subclass.
        ValueError: The name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Intervention)):
        raise TypeError(f"{cls!r} is not an Intervention subclass")
    if INTERVENTIONS.get(cls.name, cls) is not cls:
        raise ValueError(f"Another intervention is already registered as {cls.name!r}")
    INTERVENTIONS[cls.name] = cls
    return cls


@register_intervention
@dataclass(frozen=True)
class KVReroute(Intervention):
    """KV-Embedding: each row's final key/value as a prefix column every token may attend to.

    On each rerouted layer, the final token's key (with its own rotary
    rotation) and value are prepended as one key/value column that every query
    position sees, with `bias` added to its logits. Sequence length and
    positions are unchanged; `bias=-inf` gives the plain model.

    Attributes:
        layers: Layers whose attention is rerouted.
        bias: Added to the prefix column's pre-softmax logits; `-inf` disables it.
    """

    name: ClassVar[str] = "kv_reroute"
    follows_layers_option: ClassVar[bool] = True

    layers: LayerSpec = "kv-fallback"
    bias: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        bias = float(self.bias)
        if math.isnan(bias) or bias == math.inf:
            raise ValueError(f"KVReroute bias must be finite or -inf, not {self.bias}")

    def attention(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        positions: TokenPositions,
        attend: Attend,
    ) -> torch.Tensor | None:
        """Attend with each row's final key/value prepended."""
        rows = torch.arange(key.shape[0], device=key.device)
        last_key = key[rows, :, positions.last].unsqueeze(2)
        last_value = value[rows, :, positions.last].unsqueeze(2)
        return attend(query, key, value, mask, prefix_key=last_key, prefix_value=last_value, prefix_bias=self.bias)


@register_intervention
@dataclass(frozen=True)
class TokenPrepending(Intervention):
    """Token Prepending: a placeholder's state is overwritten by the last token's.

    Attributes:
        layers: Layers at whose input the placeholder is overwritten.
    """

    name: ClassVar[str] = "token_prepending"

    layers: LayerSpec = "early"

    def resolve(self, layers: tuple[int, ...], prompt: Prompt) -> Intervention:
        """Check that the prompt has a placeholder; see `Intervention.resolve`."""
        if prompt.placeholder is None:
            raise ValueError("TokenPrepending needs a prompt with a placeholder")
        return super().resolve(layers, prompt)

    def layer_input(self, layer: int, hidden: torch.Tensor, positions: TokenPositions) -> torch.Tensor:
        """Copy each row's last-token state onto its placeholder token."""
        if positions.placeholder is None:
            return hidden
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        hidden = hidden.clone()
        hidden[rows, positions.placeholder] = hidden[rows, positions.last]
        return hidden


def describe_intervention(intervention: Intervention | None) -> dict[str, Any] | None:
    """A JSON-able description: the registered name and the fields."""
    if intervention is None:
        return None
    fields = {key: (list(value) if isinstance(value, tuple) else value) for key, value in vars(intervention).items()}
    return {"name": intervention.name, **fields}
