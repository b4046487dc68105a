"""LlamaIndex embeddings backed by vaembed: `from llama_index.embeddings.vaembed import VAEmbedding`."""

from __future__ import annotations

from llama_index.embeddings.vaembed.base import VAEmbedding

__all__ = ["VAEmbedding"]
