"""Lexical scores and their fusion with dense scores, for the retrieval tasks.

- `bm25_scores`: BM25 (`bm25s`, Lucene variant, k1 = 1.5, b = 0.75) over the
  task's documents, with English stop words and the Snowball English stemmer:
  what LlamaIndex's `BM25Retriever` uses by default.
- `minmax_fusion`: per query, each score row is min-max scaled to [0, 1], then
  `weight * dense + (1 - weight) * lexical` (LlamaIndex's `relative_score` mode).
- `rrf_fusion`: reciprocal rank fusion, `sum 1 / (k + rank)` with k = 60 (what
  LangChain's `EnsembleRetriever` computes), equal weights unless given.

Every function takes and returns (queries x documents) score matrices; the
task's nDCG@10 is computed from them by `vaembed.calibration.devset.ndcg_at_10`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FUSION_WEIGHTS", "RRF_K", "bm25_scores", "minmax_fusion", "minmax_sum", "rrf_fusion"]

FUSION_WEIGHTS = (0.3, 0.5, 0.7)
"""Dense weights of the min-max fusions the benchmark reports."""
RRF_K = 60


def bm25_scores(queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
    """BM25 score of every document for every query, (len(queries), len(documents)) float64."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    index = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    index.index(
        bm25s.tokenize(list(documents), stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(list(queries), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    return np.stack([index.get_scores(query) for query in tokens]).astype(np.float64)


def _minmax(rows: np.ndarray) -> np.ndarray:
    low, high = rows.min(axis=1, keepdims=True), rows.max(axis=1, keepdims=True)
    return (rows - low) / np.where(high > low, high - low, 1.0)


def minmax_sum(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Per-query min-max scaling of each score matrix, then their weighted sum."""
    return sum(w * _minmax(np.asarray(s, dtype=np.float64)) for w, s in zip(weights, scores, strict=True))


def minmax_fusion(dense: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    """Per-query min-max scaling of both score matrices, then `weight * dense + (1 - weight) * lexical`."""
    return minmax_sum([dense, lexical], [weight, 1 - weight])


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each document per query (ties broken by document order, as a stable sort does)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, scores.shape[1] + 1)
    return ranks


def rrf_fusion(*scores: np.ndarray, weights: Sequence[float] | None = None, k: int = RRF_K) -> np.ndarray:
    """Weighted reciprocal rank fusion of several score matrices: `sum_i w_i / (k + rank_i)`."""
    weights = [1.0] * len(scores) if weights is None else list(weights)
    return sum(w / (k + _ranks(np.asarray(s, dtype=np.float64))) for w, s in zip(weights, scores, strict=True))
