"""The options that pick a model and recipe, as adapters take them.

LangChain, LlamaIndex and Chroma objects (and the server) take the same
options as plain values; `ModelOptions.build` turns them into an `Embedder`
through the shared model cache, or checks that none were given alongside a
ready embedder (they would be silently ignored otherwise).
`options_of` reads the options back from an embedder, with concrete layers,
so a saved config rebuilds the same embedding space.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from vaembed.embedder import Embedder
from vaembed.engine.tokenization import LongTextPolicy
from vaembed.models.registry import DEFAULT_MODEL
from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.postprocess import PostProcess
from vaembed.recipes.presets import DEFAULT_RECIPE

__all__ = ["MODEL_ENV", "MODEL_OPTION_NAMES", "ModelOptions", "default_model", "options_of", "check_call_options"]

MODEL_ENV = "VAEMBED_MODEL"
"""Environment variable naming the model adapters load when none is given."""

MODEL_OPTION_NAMES = (
    *("model", "recipe", "layers", "postprocess", "max_length", "long_text", "device", "dtype", "model_kwargs"),
    "trust_remote_code",
)


def default_model() -> str:
    """The model adapters load by default: `$VAEMBED_MODEL`, else `vaembed.DEFAULT_MODEL`."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


@dataclass(frozen=True)
class ModelOptions:
    """Which model and recipe to load; None everywhere means the engine's default.

    Attributes:
        model: A preset name, a `.gguf` file, a model folder or a hub id
            (default `default_model()`).
        recipe: A preset recipe name (default `vaembed.DEFAULT_RECIPE`, `"hs-mean"`).
        layers: The recipe's layer set (default the recipe's own: `"fallback"` for
            `va`, `wva` and `aligned-wva`, calibrated (`"auto"`) rerouted layers for `kv`).
        postprocess: `"center"`, `"standardize"` or `"none"` (default the recipe's own).
        max_length: Tokens per input, prompt included.
        long_text: `"truncate"` (warns), `"chunk"` or `"error"`.
        device: Where the model runs.
        dtype: `"float32"`, `"bfloat16"`, `"float16"` or `"auto"`.
        model_kwargs: Extra arguments for `transformers.AutoModel.from_pretrained`.
        trust_remote_code: Allow a checkpoint's own Python code (off unless set to True).
    """

    model: str | None = None
    recipe: str | None = None
    layers: LayerSpec | None = None
    postprocess: PostProcess | None = None
    max_length: int | None = None
    long_text: LongTextPolicy | None = None
    device: str | None = None
    dtype: str | None = None
    model_kwargs: dict[str, Any] | None = None
    trust_remote_code: bool | None = None

    def given(self) -> dict[str, Any]:
        """The options set to something other than None (or an empty dict)."""
        return {name: value for name, value in asdict(self).items() if value is not None and value != {}}

    def build(self, embedder: Embedder | None = None) -> Embedder:
        """Return `embedder` as is, or load one from these options (sharing the model).

        Raises:
            ValueError: Both `embedder` and model options were given.
        """
        given = self.given()
        if not given.get("trust_remote_code", True):
            del given["trust_remote_code"]  # False is the default: not an option that conflicts with an embedder
        if embedder is not None:
            if not isinstance(embedder, Embedder):
                raise TypeError(f"embedder must be a vaembed.Embedder, not {type(embedder).__name__}")
            if given:
                raise ValueError(f"Pass either a ready embedder or the options {sorted(given)} that load one, not both")
            return embedder
        model = given.pop("model", None) or default_model()
        recipe = given.pop("recipe", DEFAULT_RECIPE)
        return Embedder.from_pretrained(model, recipe, given.pop("layers", None), **given)


def options_of(embedder: Embedder) -> dict[str, Any]:
    """The options that rebuild `embedder`'s embedding space: name, recipe, concrete layers, lengths."""
    return {
        "model": embedder.name,
        "recipe": embedder.recipe.name,
        "layers": embedder.layers,
        "postprocess": embedder.recipe.postprocess,
        "max_length": embedder.max_length,
        "long_text": embedder.long_text,
    }


def check_call_options(batch_size: Any, query_prompt: Any, document_prompt: Any) -> None:
    """Validate the per-call options adapters keep.

    Raises:
        ValueError: `batch_size` is not a positive int.
        TypeError: A prompt is neither a str nor None.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    for label, value in (("query_prompt", query_prompt), ("document_prompt", document_prompt)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{label} must be a str or None, not {type(value).__name__}")
