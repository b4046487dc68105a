"""Layer specs: how a recipe names the layers it reads or changes, and how they resolve.

A spec is model-independent: a name (`"final"`, `"fallback"`, `"kv-fallback"`,
`"early"`), an index, or a sequence of indices (negative ones count from the
end). `"auto"` stands for the layers a calibration profile chose; only
`Recipe.resolve`, which is handed those layers, can resolve it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AUTO", "LAYER_NAMES", "LayerSpec", "is_auto", "resolve_layers", "window_width"]

LayerSpec = str | int | Sequence[int]

AUTO = "auto"
"""The layer spec filled by layer calibration."""

LAYER_NAMES = ("final", "fallback", "kv-fallback", "early")
"""The named layer sets `resolve_layers` knows (besides `"auto"`)."""


def is_auto(spec: LayerSpec) -> bool:
    """Whether `spec` is `"auto"`."""
    return isinstance(spec, str) and spec == AUTO


def window_width(num_layers: int) -> int:
    """Width of a calibrated window: `max(2, round(0.1 L))` layers."""
    return max(2, round(0.1 * num_layers))


def _named(spec: str, num_layers: int) -> tuple[int, ...]:
    half = num_layers // 2
    if spec == "final":
        return (num_layers - 1,)
    if spec == "fallback":
        return tuple(range(half, num_layers))
    if spec == "kv-fallback":
        return tuple(range(half, min(num_layers, half + window_width(num_layers))))
    return tuple(range(max(1, round(0.25 * num_layers))))  # "early"


def resolve_layers(spec: LayerSpec, num_layers: int) -> tuple[int, ...]:
    """Resolve a layer spec to sorted, distinct, non-negative layer indices.

    Args:
        spec: `"final"` (last layer), `"fallback"` (`[L//2, L)`), `"kv-fallback"`
            (a window of `max(2, round(0.1 L))` layers from `L//2`), `"early"`
            (the first quarter, at least one layer), an index, or a sequence of
            indices (negative ones count from the end).
        num_layers: The model's number of decoder layers `L`.

    Raises:
        ValueError: `"auto"`, an unknown name, an empty set, or an index out of range.
        TypeError: An index is not an int.
    """
    if isinstance(spec, str):
        if spec == AUTO:
            raise ValueError("layers='auto' needs a calibration profile; Recipe.resolve takes its layers")
        if spec not in LAYER_NAMES:
            raise ValueError(
                f"Unknown layer spec {spec!r}; use one of {sorted(LAYER_NAMES)}, a layer index or a list of indices"
            )
        return _named(spec, num_layers)
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
