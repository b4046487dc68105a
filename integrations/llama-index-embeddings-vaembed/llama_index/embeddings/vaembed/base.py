"""`VAEmbedding`: a LlamaIndex `BaseEmbedding` over a frozen decoder-only LLM, via vaembed."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, Field, PrivateAttr

from vaembed import DEFAULT_RECIPE, Embedder
from vaembed.connectors.options import MODEL_OPTION_NAMES, ModelOptions, default_model, options_of
from vaembed.engine.tokenization import LongTextPolicy

__all__ = ["VAEmbedding"]


class VAEmbedding(BaseEmbedding):
    """Embeddings read from the attention values of a frozen causal LM (no fine-tuning).

    Objects with the same model and loading options share one loaded model per
    process; calls from several threads or coroutines are safe and return what
    sequential calls return. The async methods run in a worker thread, so they
    never block the event loop.

    Example:
        ```python
        from llama_index.core import Settings
        from llama_index.embeddings.vaembed import VAEmbedding

        Settings.embed_model = VAEmbedding(recipe="aligned-wva")
        ```

    Args:
        embedder: A ready `vaembed.Embedder` to use instead of loading one (pass
            none of the model options with it; they are read from it). It is
            not serialised.
        **data: The fields below.
    """

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        default_factory=default_model,
        description="The LLM: a vaembed preset name, a .gguf file, a model folder or a Hugging Face hub id. "
        "Default $VAEMBED_MODEL, else vaembed's default model.",
    )
    recipe: str = Field(
        default=DEFAULT_RECIPE,
        description="The embedding method, a vaembed preset recipe: hs-mean (default), va, wva, aligned-wva, kv, "
        "hs-last, prompteol, echo or token-prepending.",
    )
    layers: list[int] | int | str | None = Field(
        default=None,
        description="The recipe's layer set: None keeps its default ('fallback', the second half of the layers, "
        "for 'va', 'wva' and 'aligned-wva'; 'auto', chosen by intrinsic dimension once per model, for the "
        "rerouted layers of 'kv'); 'auto', 'fallback', 'final', or indices ('auto' is better for 'va' and "
        "'aligned-wva' on models under 1B parameters).",
    )
    postprocess: Literal["none", "center", "standardize"] | None = Field(
        default=None,
        description="Subtract the model's mean embedding over a generic corpus ('center'), or also scale each "
        "dimension by its spread there ('standardize'), before normalising; None keeps the recipe's own choice.",
    )
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Texts per forward pass.")
    normalize: bool = Field(default=True, description="L2-normalise the embeddings.")
    max_length: int | None = Field(
        default=None, gt=0, description="Maximum tokens per input, prompt included; None for the model's context."
    )
    long_text: LongTextPolicy = Field(
        default="truncate",
        description="Longer inputs: 'truncate' (with a warning), 'chunk' (token-weighted mean of windows) or 'error'.",
    )
    device: str | None = Field(default=None, description="Where the model runs; None picks CUDA when available.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        default=None, description="Parameter dtype; None is bfloat16 on CUDA and float32 on CPU."
    )
    query_instruction: str | None = Field(
        default=None,
        description="Instruction for queries: a template holding {text}, or a prefix put before the text verbatim "
        "(include any separator yourself), as in every vaembed adapter. It goes inside the recipe's own prompt.",
    )
    text_instruction: str | None = Field(default=None, description="Instruction for texts (documents), as above.")
    show_progress: bool = Field(default=False, description="Show the engine's progress bar on large batches.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments for transformers.AutoModel.from_pretrained."
    )

    trust_remote_code: bool = Field(
        default=False, description="Allow the checkpoint's own Python code (transformers' trust_remote_code)."
    )

    _embedder: Embedder = PrivateAttr()

    def __init__(self, *, embedder: Embedder | None = None, **data: Any) -> None:
        super().__init__(**data)
        fields = {name: "model_name" if name == "model" else name for name in MODEL_OPTION_NAMES}
        if embedder is None:
            self._embedder = ModelOptions(**{name: getattr(self, f) for name, f in fields.items()}).build()
            return
        explicit = {name: getattr(self, f) for name, f in fields.items() if f in self.model_fields_set}
        self._embedder = ModelOptions(**explicit).build(embedder)
        for name, value in options_of(self._embedder).items():
            setattr(self, fields[name], value)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex stores with a serialised component."""
        return "VAEmbedding"

    @property
    def embedder(self) -> Embedder:
        """The vaembed engine in use."""
        return self._embedder

    def _encode(self, texts: str | list[str], role: Literal["query", "document"]) -> Any:
        instruction = self.query_instruction if role == "query" else self.text_instruction
        return self._embedder.encode(
            texts,
            role=role,
            prompt=instruction,
            batch_size=self.embed_batch_size,
            normalize=self.normalize,
            show_progress_bar=self.show_progress,
        )

    def _get_query_embedding(self, query: str) -> Embedding:
        if not isinstance(query, str):
            raise TypeError(f"A query must be a str, not {type(query).__name__}")
        return self._encode(query, "query").tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        if not isinstance(text, str):
            raise TypeError(f"A text must be a str, not {type(text).__name__}")
        return self._encode(text, "document").tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if isinstance(texts, str):
            raise TypeError("_get_text_embeddings takes a list of str")
        return self._encode(list(texts), "document").tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
