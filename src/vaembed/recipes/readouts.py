"""Readouts: what a recipe reads from the forward pass, and how it becomes one vector.

A readout owns three things: its capture point (which per-token tensor of a
layer it reads), its pooling over tokens, and its dimension for a model
config. The engine offers three capture points, named after METHODS' symbols:

- `"hidden"`: the residual stream leaving a layer (`x[l+1]`); for the last
  layer, the final hidden state after the model's final norm (`h`). (B, T, D)
- `"values"`: the value vectors `v[l]` the attention function receives (after
  `v_proj`, before the GQA repeat), heads concatenated. (B, T, G*d)
- `"weighted_values"`: the per-head weighted values `u[l]` (the input of
  `o_proj`), heads concatenated. (B, T, H*d)

The engine pools each read layer at once and averages over the recipe's layers,
so no per-token state is kept. A new readout is one subclass here (or in your
own code) registered with `register_readout`; nothing else dispatches on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import torch

from vaembed.recipes.pooling import Pooling, TokenPositions, pool_tokens

__all__ = [
    "CAPTURE_POINTS",
    "AttentionOutput",
    "CapturePoint",
    "HiddenStates",
    "READOUTS",
    "Readout",
    "ValueVectors",
    "WeightedValues",
    "get_readout",
    "head_dim",
    "register_readout",
]

CapturePoint = Literal["hidden", "values", "weighted_values"]
CAPTURE_POINTS: tuple[str, ...] = get_args(CapturePoint)


def head_dim(config: Any) -> int:
    """The attention head size `d` of a model config."""
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


@dataclass(frozen=True)
class Readout:
    """Base class of readouts: a capture point, a pooling over tokens and a dimension.

    Subclasses set `point` and implement `dimension`; `read` pools the captured
    per-token vectors and may transform the pooled vector (as `AttentionOutput`
    applies `o_proj`).

    Attributes:
        pooling: `"mean"` over the prompt's pooling span, `"last"` token, or
            `"hybrid"` (their average). A subclass may override `read` to pool otherwise.
    """

    point: ClassVar[CapturePoint]
    kind: ClassVar[str] = "readout"

    pooling: Pooling = "mean"

    def __new__(cls, *args: Any, **kwargs: Any) -> Readout:
        """Refuse to build the base class itself (it has no capture point)."""
        if cls is Readout:
            raise TypeError(
                "Readout is the base class of readouts: use READOUTS[name] or a subclass such as ValueVectors('mean')"
            )
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if getattr(type(self), "point", None) not in CAPTURE_POINTS:
            raise TypeError(f"{type(self).__name__}.point must be one of {CAPTURE_POINTS}")

    def dimension(self, config: Any) -> int:
        """Size of this readout's vectors for a model with `config`."""
        raise NotImplementedError(f"{type(self).__name__} must define dimension(config)")

    def read(self, states: torch.Tensor, positions: TokenPositions, module: torch.nn.Module) -> torch.Tensor:
        """Pool one layer's per-token vectors (B, T, F) into float32 (B, dim).

        Args:
            states: The captured per-token vectors of one layer.
            positions: The batch's token positions.
            module: The layer's attention module (for `"values"` and
                `"weighted_values"`) or decoder layer (for `"hidden"`).
        """
        return pool_tokens(states, self.pooling, positions)

    @property
    def name(self) -> str:
        """The name this readout is registered under, else `kind-pooling`."""
        for name, known in READOUTS.items():
            if known == self:
                return name
        return f"{self.kind}-{self.pooling}"


@dataclass(frozen=True)
class HiddenStates(Readout):
    """Residual stream leaving each read layer; the final normed hidden state at the last layer."""

    point: ClassVar[CapturePoint] = "hidden"
    kind: ClassVar[str] = "hidden"

    def dimension(self, config: Any) -> int:
        """The hidden size `D`."""
        return int(config.hidden_size)


@dataclass(frozen=True)
class ValueVectors(Readout):
    """Value vectors `v` (VA, Value Aggregation), KV heads concatenated."""

    point: ClassVar[CapturePoint] = "values"
    kind: ClassVar[str] = "value"

    def dimension(self, config: Any) -> int:
        """`G * d`: KV heads times head size."""
        return int(config.num_key_value_heads) * head_dim(config)


@dataclass(frozen=True)
class WeightedValues(Readout):
    """Per-head attention-weighted values `u` (WVA), query heads concatenated."""

    point: ClassVar[CapturePoint] = "weighted_values"
    kind: ClassVar[str] = "weighted"

    def dimension(self, config: Any) -> int:
        """`H * d`: query heads times head size."""
        return int(config.num_attention_heads) * head_dim(config)


@dataclass(frozen=True)
class AttentionOutput(Readout):
    """Attention output `a = W_O u` (AlignedWVA): weighted values mapped through `o_proj`.

    `o_proj` is applied after pooling: it is affine and pooling weights sum to
    one, so this equals pooling `o_proj(u)` at a fraction of the cost.
    """

    point: ClassVar[CapturePoint] = "weighted_values"
    kind: ClassVar[str] = "attention"

    def dimension(self, config: Any) -> int:
        """The hidden size `D`."""
        return int(config.hidden_size)

    def read(self, states: torch.Tensor, positions: TokenPositions, module: torch.nn.Module) -> torch.Tensor:
        """Pool `u`, then apply the layer's `o_proj`."""
        pooled = pool_tokens(states, self.pooling, positions)
        return module.o_proj(pooled.to(states.dtype)).float()


READOUTS: dict[str, Readout] = {
    "hidden_mean": HiddenStates("mean"),
    "hidden_last": HiddenStates("last"),
    "hidden_hybrid": HiddenStates("hybrid"),
    "value_mean": ValueVectors("mean"),
    "value_weighted": WeightedValues("last"),
    "attention_last": AttentionOutput("last"),
}
"""The readouts of METHODS.md by name; `register_readout` adds more."""


def register_readout(name: str, readout: Readout) -> Readout:
    """Register a readout under `name` (so recipes, reports and configs can name it); return it.

    Raises:
        TypeError: `readout` is not a `Readout`.
        ValueError: `name` is taken by another readout.
    """
    if not isinstance(readout, Readout):
        raise TypeError(f"readout must be a Readout, not {type(readout).__name__}")
    if name in READOUTS and READOUTS[name] != readout:
        raise ValueError(f"A different readout is already registered as {name!r}")
    READOUTS[name] = readout
    return readout


def get_readout(readout: str | Readout) -> Readout:
    """Return a registered readout by name, or the readout itself.

    Raises:
        ValueError: An unknown name (the registered ones are listed).
        TypeError: Neither a name nor a `Readout`.
    """
    if isinstance(readout, Readout):
        return readout
    if not isinstance(readout, str):
        raise TypeError(f"readout must be a Readout or a registered name, not {type(readout).__name__}")
    if readout not in READOUTS:
        raise ValueError(f"Unknown readout {readout!r}; registered readouts are {', '.join(READOUTS)}")
    return READOUTS[readout]
