"""A small semantic-search demo over a bundled corpus.

The corpus (`data/demo_corpus.json`, CC0-1.0) holds short documents on clearly
distinct topics and a few default queries, each answered by exactly one
document. `search` embeds documents and queries with their roles and ranks the
documents for each query by cosine similarity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import numpy as np

__all__ = ["DemoCorpus", "DemoQuery", "load_corpus", "search", "rank", "answer_hits"]

CORPUS_FILE = "demo_corpus.json"


class _Encoder(Protocol):
    def encode(self, texts: Sequence[str], *, role: str = ..., normalize: bool = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class DemoQuery:
    """A default query and the index of the document that answers it.

    Attributes:
        query: The query text.
        answer: Index into `DemoCorpus.documents` of its answer.
    """

    query: str
    answer: int


@dataclass(frozen=True)
class DemoCorpus:
    """The bundled demo corpus.

    Attributes:
        documents: The documents, one short text each.
        queries: The default queries with their answers.
        licence: The corpus's licence.
    """

    documents: tuple[str, ...]
    queries: tuple[DemoQuery, ...]
    licence: str


def load_corpus() -> DemoCorpus:
    """Load the bundled demo corpus from the package data.

    Returns:
        The documents and default queries.

    Raises:
        ValueError: The bundled file is malformed (an answer index out of range).
    """
    text = resources.files("vaembed").joinpath("data", CORPUS_FILE).read_text(encoding="utf-8")
    raw = json.loads(text)
    documents = tuple(str(item) for item in raw["documents"])
    queries = tuple(DemoQuery(str(item["query"]), int(item["answer"])) for item in raw["queries"])
    for item in queries:
        if not 0 <= item.answer < len(documents):
            raise ValueError(f"Demo query {item.query!r} names answer {item.answer}, out of range")
    return DemoCorpus(documents, queries, str(raw.get("licence", "")))


def rank(document_embeddings: np.ndarray, query_embeddings: np.ndarray, top_k: int) -> list[list[tuple[int, float]]]:
    """Rank documents for each query by cosine similarity.

    Args:
        document_embeddings: Shape (documents, dim).
        query_embeddings: Shape (queries, dim).
        top_k: How many documents to keep per query (capped at the corpus size).

    Returns:
        For each query, `(document index, cosine score)` pairs, best first; ties
        keep the lower index first.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, not {top_k!r}")
    docs = _unit_rows(np.asarray(document_embeddings, dtype=np.float64))
    queries = _unit_rows(np.asarray(query_embeddings, dtype=np.float64))
    scores = queries @ docs.T
    keep = min(top_k, docs.shape[0])
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:keep]
        out.append([(int(index), float(row[index])) for index in order])
    return out


def search(
    embedder: _Encoder, documents: Sequence[str], queries: Sequence[str], top_k: int = 3
) -> list[list[tuple[int, float]]]:
    """Embed documents and queries with their roles and rank the documents per query.

    Args:
        embedder: An `Embedder` (anything with its `encode` signature).
        documents: The texts to search, embedded with `role="document"`.
        queries: The queries, embedded with `role="query"`.
        top_k: How many documents to return per query.

    Returns:
        For each query, `(document index, cosine score)` pairs, best first.
    """
    documents, queries = list(documents), list(queries)
    if not documents:
        raise ValueError("search needs at least one document")
    if not queries:
        return []
    document_embeddings = embedder.encode(documents, role="document", normalize=True)
    query_embeddings = embedder.encode(queries, role="query", normalize=True)
    return rank(np.asarray(document_embeddings), np.asarray(query_embeddings), top_k)


def answer_hits(results: Sequence[Sequence[tuple[int, float]]], answers: Sequence[int]) -> int:
    """Count the queries whose first-ranked document is their answer.

    Args:
        results: Rankings as returned by `search`.
        answers: The answer index for each query.
    """
    return sum(1 for ranking, answer in zip(results, answers, strict=True) if ranking and ranking[0][0] == answer)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    if matrix.ndim != 2:
        raise ValueError(f"Embeddings must be a 2-D array, not shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
