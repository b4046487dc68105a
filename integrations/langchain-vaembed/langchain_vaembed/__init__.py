"""LangChain embeddings backed by vaembed: `from langchain_vaembed import VAEmbeddings`."""

from __future__ import annotations

from langchain_vaembed.embeddings import VAEmbeddings

__all__ = ["VAEmbeddings"]
