"""A native Chroma embedding function (`pip install "vaembed[chroma]"`).

Importing this module registers `VAEmbeddingFunction` with Chroma under the
name `"vaembed"`, so a persisted collection reopens with the same settings:
Chroma stores `get_config()` with the collection and rebuilds the function
from it. The stored config names the concrete layers, not `"auto"`, so a later
recalibration can never mix two embedding spaces in one collection.

The config reopens on another machine: it keeps everything that changes the
vectors (model, recipe, layers, post-processing, lengths, prompts, dtype,
`trust_remote_code`, the weight-changing `model_kwargs`) and nothing local to
one machine: no device (each process picks its own), and no path of vaembed's
or Hugging Face's cache (a converted preset is stored by its name, a hub
snapshot by its hub id and revision; see `vaembed.connectors.portable`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaembed.connectors.extras import missing_extra

try:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as error:
    raise missing_extra("chroma", "The Chroma embedding function", error) from error

from vaembed.connectors.options import ModelOptions, check_call_options, options_of
from vaembed.connectors.portable import local_model, portable_model, portable_model_kwargs
from vaembed.embedder import Embedder
from vaembed.engine.tokenization import LongTextPolicy
from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.postprocess import PostProcess

__all__ = ["VAEmbeddingFunction"]

_OPTIONS = (
    *("model", "recipe", "layers", "postprocess", "max_length", "long_text", "device", "dtype", "model_kwargs"),
    *("batch_size", "normalize", "query_prompt", "document_prompt", "trust_remote_code"),
)
# Changing one of these changes the vectors, so a collection must keep them.
_FIXED = (
    *("model", "recipe", "layers", "postprocess", "max_length", "long_text", "normalize"),
    *("query_prompt", "document_prompt"),
)


@register_embedding_function
class VAEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function backed by a vaembed `Embedder`.

    Documents are embedded with the document prompt, queries (Chroma calls
    `embed_query` for `query_texts`) with the query prompt. Functions with the
    same model and loading options share one loaded model per process.

    Args:
        model: A preset name, a `.gguf` file, a model folder or a hub id
            (None: `vaembed.DEFAULT_MODEL`).
        recipe: A preset recipe name (None: `vaembed.DEFAULT_RECIPE`, `"hs-mean"`).
        layers: The recipe's layer set (None: its default: `"fallback"` for `va`,
            `wva` and `aligned-wva`, calibrated (`"auto"`) rerouted layers for `kv`).
        postprocess: `"center"`, `"standardize"` or `"none"` (None: the recipe's own).
        batch_size: Texts per forward pass.
        normalize: L2-normalise the embeddings (the default space is cosine).
        max_length: Tokens per input, prompt included (None: the model's context, at most 8192).
        long_text: `"truncate"` (None; warns), `"chunk"`, or `"error"`.
        device: None: CUDA when available, else CPU.
        dtype: `"float32"`, `"bfloat16"`, `"float16"` or `"auto"` (None: bfloat16 on CUDA, else float32).
        query_prompt: Instruction for queries: a template with `{text}` or a prefix.
        document_prompt: Instruction for documents.
        model_kwargs: Extra arguments for `transformers.AutoModel.from_pretrained`.
        trust_remote_code: Allow the checkpoint's own Python code (off by default).
        embedder: A ready `Embedder` to use instead of loading one (then pass
            none of the model options above; `get_config` reads them from it).
    """

    def __init__(
        self,
        model: str | None = None,
        recipe: str | None = None,
        layers: LayerSpec | None = None,
        *,
        postprocess: PostProcess | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        max_length: int | None = None,
        long_text: LongTextPolicy | None = None,
        device: str | None = None,
        dtype: str | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        embedder: Embedder | None = None,
    ) -> None:
        check_call_options(batch_size, query_prompt, document_prompt)
        options = ModelOptions(
            model, recipe, layers, postprocess, max_length, long_text, device, dtype, model_kwargs, trust_remote_code
        )
        self.trust_remote_code = bool(trust_remote_code)
        self.embedder = options.build(embedder)
        self.device = device
        self.dtype = dtype
        self.model_kwargs = dict(model_kwargs or {})
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt

    def _embed(self, input: Documents, role: str, prompt: str | None) -> Embeddings:
        if isinstance(input, str):
            input = [input]
        vectors = self.embedder.encode(
            list(input), role=role, prompt=prompt, batch_size=self.batch_size, normalize=self.normalize
        )
        return [np.asarray(row, dtype=np.float32) for row in vectors]

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents."""
        return self._embed(input, "document", self.document_prompt)

    def embed_query(self, input: Documents) -> Embeddings:
        """Embed queries (with the query prompt)."""
        return self._embed(input, "query", self.query_prompt)

    @staticmethod
    def name() -> str:
        """The name Chroma stores with a collection."""
        return "vaembed"

    def default_space(self) -> Space:
        """Cosine: the embeddings are L2-normalised by default."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Every Chroma space works; cosine and ip agree on normalised vectors."""
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        """Settings that rebuild this function on any machine, with concrete layers (no device, no cache path)."""
        options = options_of(self.embedder)
        options["model"], revision = portable_model(options["model"])
        return {
            **options,
            "dtype": self.dtype,
            "model_kwargs": portable_model_kwargs(self.model_kwargs, revision),
            "trust_remote_code": self.trust_remote_code,
            "batch_size": self.batch_size,
            "normalize": self.normalize,
            "query_prompt": self.query_prompt,
            "document_prompt": self.document_prompt,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> VAEmbeddingFunction:
        """Rebuild a function from `get_config()`'s output, on this machine's device and cache.

        A `device` in configs stored by earlier versions is ignored: the
        device is this process's choice (CUDA when available, else CPU).
        """
        VAEmbeddingFunction.validate_config(config)
        options = {key: value for key, value in config.items() if key != "device"}
        options["model"] = local_model(options["model"])
        return VAEmbeddingFunction(**options)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Reject configs with unknown keys or without a model.

        Raises:
            ValueError: Naming the unknown keys, or the missing model.
        """
        unknown = sorted(set(config) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"Unknown vaembed embedding function options: {unknown}")
        if not isinstance(config.get("model"), str):
            raise ValueError("A vaembed embedding function config needs a 'model' string")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse changes that would put vectors of another space into a collection.

        Raises:
            ValueError: Naming the options that changed.
        """
        changed = [key for key in _FIXED if key in new_config and new_config[key] != old_config.get(key)]
        if changed:
            raise ValueError(
                f"Changing {changed} would change the embeddings of a collection that already holds vectors; "
                "create a new collection instead"
            )

    def __repr__(self) -> str:
        return f"VAEmbeddingFunction({self.embedder!r})"
