"""Two experiments on top of the preset passes: a lexical readout, and concatenated readouts.

- `lexical_experiment`: the PromptReps-style sparse readout of the PromptEOL
  pass (`vaembed.lexical`, the library's `Embedder.encode_sparse`), alone, fused with BM25, with dense
  configurations, and with both; beside each dense configuration's own best
  fusion with BM25, which it must beat to earn a place in the library.
- `combined_experiment`: mean-pooled value vectors (strong on similarity) and
  AlignedWVA's last-token readout (strong on retrieval), each post-processed and
  normalised, concatenated: from two passes (plain text and PromptEOL) or from
  the PromptEOL pass alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.hybrid import FUSION_WEIGHTS, minmax_fusion, minmax_sum
from benchmarks.readouts import Readings
from benchmarks.variants import DENSE_VARIANTS, dense_embeds, fusions, hybrid_scores, score_variants
from vaembed.lexical import lexical_vectors, lm_head_weight

__all__ = ["combined_experiment", "lexical_experiment"]

Embed = Callable[[list[str], str], np.ndarray]
FUSED_WITH = ("va@fallback", "aligned-wva@fallback")
"""The dense configurations the lexical readout is fused with."""


def lexical_scores(queries: Any, documents: Any) -> np.ndarray:
    """Dot products of sparse query and document vectors, (queries x documents)."""
    return np.asarray((queries @ documents.T).todense(), dtype=np.float64)


def _rows(reading: Readings, role: str, texts: list[str], capture: str) -> np.ndarray:
    index = {text: i for i, text in enumerate(reading.texts[role])}
    return reading.vectors[role][capture][-1][[index[text] for text in texts]]


def lexical_experiment(
    embedder: Any,
    prompteol: Readings,
    retrieval: list[Any],
    bm25: dict[str, np.ndarray],
    dense: dict[str, dict[str, Embed]],
) -> dict[str, Any]:
    """The lexical readout's nDCG@10 alone and fused, per retrieval task (see the module docstring).

    Args:
        embedder: Supplies the tokenizer and the LM head.
        prompteol: The PromptEOL group's readings (with the final last-token capture `hidden_last`).
        retrieval: The retrieval tasks.
        bm25: Each task's BM25 score matrix.
        dense: `dense[config][variant]` embed functions to fuse with.
    """
    head = lm_head_weight(embedder.model)
    out: dict[str, Any] = {"alone": {}, "with_bm25": {}, "with_dense": {}, "with_dense_and_bm25": {}, "dense_bm25": {}}
    for task in retrieval:
        queries = lexical_vectors(_rows(prompteol, "query", task.queries, "hidden_last"), task.queries,
                                  embedder.tokenizer, head)  # fmt: skip
        documents = lexical_vectors(_rows(prompteol, "document", task.documents, "hidden_last"), task.documents,
                                    embedder.tokenizer, head)  # fmt: skip
        lexical = lexical_scores(queries, documents)
        out["alone"][task.name] = round(task.ndcg(lexical), 4)
        out["with_bm25"][task.name] = fusions(task, lexical, bm25[task.name])
        for config, variants in dense.items():
            for variant, embed in variants.items():
                key = f"{config}/{variant}"
                scores = task.retrieval_scores(embed)
                best_pair = max(fusions(task, scores, bm25[task.name]).values())
                with_dense, triple = {}, {}
                for w in FUSION_WEIGHTS:
                    with_dense[f"minmax@{w}"] = round(task.ndcg(minmax_fusion(scores, lexical, w)), 4)
                    three = minmax_sum([scores, bm25[task.name], lexical], [w, (1 - w) / 2, (1 - w) / 2])
                    triple[f"minmax@{w}"] = round(task.ndcg(three), 4)
                out["with_dense"].setdefault(key, {})[task.name] = with_dense
                out["with_dense_and_bm25"].setdefault(key, {})[task.name] = triple
                out["dense_bm25"].setdefault(key, {})[task.name] = best_pair
    return out


def _concat(first: Embed, second: Embed) -> Embed:
    def embed(texts: list[str], role: str) -> np.ndarray:
        joined = np.concatenate([first(texts, role), second(texts, role)], axis=1)
        return (joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return embed


def combined_experiment(
    tasks: list[Any], readings: dict[str, Readings], fallback: list[int], bm25: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Scores (every task, every variant) and hybrids of the concatenated readouts at the fallback window."""
    value_plain = dense_embeds(readings["plain"], "value_mean", fallback)
    value_eol = dense_embeds(readings["prompteol"], "value_mean", fallback)
    aligned = dense_embeds(readings["prompteol"], "attention_last", fallback)
    retrieval = [task for task in tasks if task.kind == "retrieval"]
    out: dict[str, Any] = {}
    for name, values in (("va+aligned-wva (two passes)", value_plain), ("va+aligned-wva (one pass)", value_eol)):
        embeds = {variant: _concat(values[variant], aligned[variant]) for variant in DENSE_VARIANTS}
        scores = score_variants(tasks, embeds)
        scores.pop("task-standardize")
        out[name] = {"scores": scores, "hybrid": hybrid_scores(retrieval, embeds, bm25)}
    return out
