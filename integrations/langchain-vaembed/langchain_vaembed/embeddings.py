"""`VAEmbeddings`: LangChain `Embeddings` from a frozen decoder-only LLM, via vaembed."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from vaembed import DEFAULT_RECIPE, Embedder
from vaembed.connectors.options import MODEL_OPTION_NAMES, ModelOptions, default_model, options_of
from vaembed.engine.tokenization import LongTextPolicy

__all__ = ["VAEmbeddings"]


class VAEmbeddings(BaseModel, Embeddings):
    """Embeddings read from the attention values of a frozen causal LM (no fine-tuning).

    Objects with the same model and loading options share one loaded model per
    process; calls from several threads or coroutines are safe and return what
    sequential calls return. The async methods run in an executor, so they
    never block the event loop.

    Example:
        ```python
        from langchain_vaembed import VAEmbeddings

        embeddings = VAEmbeddings(recipe="aligned-wva", query_prompt="Query: ")
        vector = embeddings.embed_query("What do foxes eat?")
        ```
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, protected_namespaces=(), arbitrary_types_allowed=True
    )

    model: str = Field(default_factory=default_model, alias="model_name")
    """The LLM: a vaembed preset name (`vaembed models`), a `.gguf` file, a model folder
    or a Hugging Face hub id. Default `$VAEMBED_MODEL`, else vaembed's default model."""

    recipe: str = DEFAULT_RECIPE
    """The embedding method, a vaembed preset recipe: `hs-mean` (default), `va`, `wva`,
    `aligned-wva`, `kv`, `hs-last`, `prompteol`, `echo` or `token-prepending`."""

    layers: list[int] | int | str | None = None
    """The recipe's layer set: None keeps its default (`"fallback"`, the second half of the
    layers, for `va`, `wva` and `aligned-wva`; `"auto"`, chosen by intrinsic dimension once
    per model, for `kv`'s rerouted layers); `"auto"`, `"fallback"`, `"final"`, or indices.
    `"auto"` is better for `va` and `aligned-wva` on models under 1B parameters."""

    postprocess: Literal["none", "center", "standardize"] | None = None
    """Subtract the model's mean embedding over a generic corpus (`"center"`), or also scale
    each dimension by its spread there (`"standardize"`), before normalising; queries and
    documents alike. None keeps the recipe's own choice."""

    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass (sorted by length and padded per batch)."""

    normalize: bool = True
    """L2-normalise the embeddings (cosine similarity is then a dot product)."""

    max_length: int | None = Field(default=None, gt=0)
    """Maximum tokens per input, prompt included; None for the model's context (at most 8192)."""

    long_text: LongTextPolicy = "truncate"
    """Longer inputs: `"truncate"` (with a warning), `"chunk"` (token-weighted mean of
    windows) or `"error"`."""

    device: str | None = None
    """Where the model runs, e.g. `"cpu"` or `"cuda:0"`; None picks CUDA when available."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    """Parameter dtype; None (or `"auto"`) is bfloat16 on CUDA and float32 on CPU."""

    query_prompt: str | None = None
    """Instruction for queries (`embed_query`): a template holding `{text}`, or a prefix
    put before the text verbatim. It goes inside the recipe's own prompt."""

    document_prompt: str | None = None
    """Instruction for documents (`embed_documents`), as `query_prompt`."""

    show_progress: bool = False
    """Show a progress bar while embedding documents."""

    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for `transformers.AutoModel.from_pretrained`."""

    trust_remote_code: bool = False
    """Allow the checkpoint's own Python code (transformers' `trust_remote_code`); off by default."""

    embedder: Embedder | None = Field(default=None, exclude=True, repr=False)
    """A ready `vaembed.Embedder` to use instead of loading one (pass none of the
    model options with it; they are read from it). After construction, the engine in use."""

    def model_post_init(self, context: Any, /) -> None:
        """Load (or share) the engine, or check the injected one against the options."""
        if self.embedder is None:
            options = ModelOptions(**{name: getattr(self, name) for name in MODEL_OPTION_NAMES})
            self.embedder = options.build()
            return
        explicit = {name: getattr(self, name) for name in MODEL_OPTION_NAMES if name in self.model_fields_set}
        engine = ModelOptions(**explicit).build(self.embedder)
        for name, value in options_of(engine).items():
            setattr(self, name, value)

    def _encode(self, texts: str | list[str], role: Literal["query", "document"], prompt: str | None) -> Any:
        assert self.embedder is not None
        return self.embedder.encode(
            texts,
            role=role,
            prompt=prompt,
            batch_size=self.batch_size,
            normalize=self.normalize,
            show_progress_bar=self.show_progress if role == "document" else False,
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the document prompt.

        Raises:
            TypeError: `texts` is a single str, or an item is not a str (its index is named).
        """
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a list of str; use embed_query for a single text")
        return self._encode(list(texts), "document", self.document_prompt).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with the query prompt.

        Raises:
            TypeError: `text` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"embed_query takes a str, not {type(text).__name__}")
        return self._encode(text, "query", self.query_prompt).tolist()
