"""Scoring one configuration every way the benchmark reports: post-processing variants and hybrid fusions.

Post-processing variants of one composed readout:

- `raw`: L2 normalisation only;
- `center`, `standardize`: the engine's post-processing, with statistics of the
  readout's raw vectors over the bundled corpus (read in the same pass, cut as
  the engine cuts them), applied with the library's own `Transform`;
- `task-standardize`: per-dimension standardisation fitted on each task's own
  documents (an upper bound that needs the user's corpus).

Hybrid fusions, on the retrieval tasks only, of each variant's dense scores
with BM25: min-max weighted sums at `FUSION_WEIGHTS` and reciprocal rank fusion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.hybrid import FUSION_WEIGHTS, minmax_fusion, rrf_fusion
from benchmarks.readouts import CORPUS, Readings
from vaembed.recipes.postprocess import Transform

__all__ = [
    "DENSE_VARIANTS",
    "VARIANTS",
    "fusions",
    "generic_transform",
    "hubness",
    "hubness_scores",
    "score_variants",
    "standardized",
]

Embed = Callable[[list[str], str], np.ndarray]
VARIANTS = ("raw", "center", "standardize", "task-standardize")
DENSE_VARIANTS = ("raw", "center", "standardize")
"""The variants a user gets without fitting anything on their own data (hybrids are scored for these)."""


def generic_transform(reading: Readings, capture: str, layers: list[int], mode: str) -> Callable[[np.ndarray], Any]:
    """The engine's `mode` transform from the readout's corpus vectors in `reading`, on numpy rows."""
    corpus = reading.raw(capture, layers, CORPUS)
    transform = Transform.from_statistics(
        mode,  # type: ignore[arg-type]
        torch.from_numpy(corpus.mean(axis=0)),
        torch.from_numpy(corpus.std(axis=0)),
    )
    return lambda rows: transform(torch.from_numpy(np.asarray(rows, dtype=np.float32))).numpy()


def standardized(embed: Embed, documents: list[str]) -> Embed:
    """Per-dimension standardisation fitted on the documents' vectors, then L2 normalisation."""
    fitted = embed(documents, "document").astype(np.float64)
    mean, scale = fitted.mean(axis=0), fitted.std(axis=0) + 1e-6

    def embed_standardized(texts: list[str], role: str) -> np.ndarray:
        shifted = (embed(texts, role) - mean) / scale
        return (shifted / np.maximum(np.linalg.norm(shifted, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return embed_standardized


def documents_of(task: Any) -> list[str]:
    """The texts a task embeds as documents (what task standardisation is fitted on)."""
    return [text for role, texts in task.texts() if role == "document" for text in texts]


def dense_embeds(reading: Readings, capture: str, layers: list[int]) -> dict[str, Embed]:
    """The embed function of each corpus-free variant."""
    out = {"raw": reading.embed(capture, layers)}
    for mode in ("center", "standardize"):
        out[mode] = reading.embed(capture, layers, generic_transform(reading, capture, layers, mode))
    return out


def score_variants(tasks: list[Any], embeds: dict[str, Embed]) -> dict[str, dict[str, float]]:
    """Each variant's score on each task (task standardisation is fitted on the raw embedding)."""
    out = {variant: {t.name: round(float(t.score(embed)), 4) for t in tasks} for variant, embed in embeds.items()}
    raw = embeds["raw"]
    out["task-standardize"] = {t.name: round(float(t.score(standardized(raw, documents_of(t)))), 4) for t in tasks}
    return out


def hubness(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """How much a few documents attract every query, from each document's k-occurrence.

    The k-occurrence of a document is how many queries have it in their top k;
    its skewness over the documents is 0 without hubs (Radovanovic et al. 2010),
    and `max_share` is the largest share of queries one document reaches.
    """
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    occurrence = np.bincount(top.reshape(-1), minlength=scores.shape[1]).astype(np.float64)
    spread = occurrence.std()
    skew = float(((occurrence - occurrence.mean()) ** 3).mean() / spread**3) if spread > 0 else 0.0
    return {"skewness": round(skew, 3), "max_share": round(float(occurrence.max() / scores.shape[0]), 3)}


def hubness_scores(retrieval: list[Any], embeds: dict[str, Embed]) -> dict[str, dict[str, dict[str, float]]]:
    """`[variant][task]`: the hubness of each corpus-free variant on each retrieval task."""
    return {v: {t.name: hubness(t.retrieval_scores(embed)) for t in retrieval} for v, embed in embeds.items()}


def fusions(task: Any, dense: np.ndarray, lexical: np.ndarray) -> dict[str, float]:
    """nDCG@10 of each fusion of a dense and a lexical score matrix on one retrieval task."""
    out = {f"minmax@{w}": round(task.ndcg(minmax_fusion(dense, lexical, w)), 4) for w in FUSION_WEIGHTS}
    out["rrf"] = round(task.ndcg(rrf_fusion(dense, lexical)), 4)
    return out


def hybrid_scores(
    retrieval: list[Any], embeds: dict[str, Embed], bm25: dict[str, np.ndarray]
) -> dict[str, dict[str, dict[str, float]]]:
    """`[variant][fusion][task]`: each corpus-free variant fused with BM25 on each retrieval task."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for variant, embed in embeds.items():
        per_task = {task.name: fusions(task, task.retrieval_scores(embed), bm25[task.name]) for task in retrieval}
        out[variant] = {fusion: {name: scores[fusion] for name, scores in per_task.items()} for fusion in
                        next(iter(per_task.values()))}  # fmt: skip
    return out
