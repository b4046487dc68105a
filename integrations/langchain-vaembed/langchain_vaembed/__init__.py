"""LangChain embeddings backed by vaembed: `from langchain_vaembed import VAEmbeddings`."""

from __future__ import annotations

from langchain_vaembed.embeddings import VAEmbeddings
from langchain_vaembed.version import __version__

__all__ = ["VAEmbeddings", "__version__"]
