"""LlamaIndex embeddings backed by vaembed: `from llama_index.embeddings.vaembed import VAEmbedding`."""

from __future__ import annotations

from llama_index.embeddings.vaembed.base import VAEmbedding
from llama_index.embeddings.vaembed.version import __version__

__all__ = ["VAEmbedding", "__version__"]
