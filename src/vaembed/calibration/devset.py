"""Labelled development sets for the supervised layer sweep, and their metrics.

A dev set is either scored sentence pairs (metric: Spearman correlation of
cosine similarity with the gold score) or a small retrieval task (metric:
nDCG@10 of the cosine ranking, binary relevance). `load_dev_set` reads one from
a `.jsonl` file (one JSON value per line) or a `.json` file holding a list.

Accepted rows (one family per file):

- pairs: `{"text1": str, "text2": str, "score": number}`;
- retrieval: `{"query": str, "relevant": [str, ...], "negatives": [str, ...]}`
  (`negatives` optional), `{"document": str}` (a distractor document), and
  triples, `[anchor, positive, negative]` or
  `{"anchor": str, "positive": str, "negative": str}` (query = anchor,
  relevant = positive, negative added to the documents).

Documents are deduplicated by exact text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["DevSet", "load_dev_set", "ndcg_at_10", "score_dev_set", "spearman"]

DevKind = Literal["pairs", "retrieval"]
MIN_PAIRS = 3
MIN_QUERIES = 2

_ROW_SHAPES = {
    frozenset({"text1", "text2", "score"}): "pair",
    frozenset({"anchor", "positive", "negative"}): "triple",
    frozenset({"document"}): "document",
    frozenset({"query", "relevant"}): "query",
    frozenset({"query", "relevant", "negatives"}): "query",
}
_FAMILY = {"pair": "pairs", "triple": "retrieval", "document": "retrieval", "query": "retrieval"}


@dataclass(frozen=True)
class DevSet:
    """A labelled development set.

    Attributes:
        kind: `"pairs"` or `"retrieval"`.
        pairs: `(text1, text2, score)` rows (pairs only).
        queries: Query texts (retrieval only).
        documents: Distinct document texts (retrieval only).
        relevant: For each query, the indices into `documents` of its relevant documents.
        name: A label for reports (the file's stem when loaded).
    """

    kind: DevKind
    pairs: tuple[tuple[str, str, float], ...] = ()
    queries: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    relevant: tuple[frozenset[int], ...] = ()
    name: str = "dev"

    def __post_init__(self) -> None:
        if self.kind == "pairs":
            if len(self.pairs) < MIN_PAIRS:
                raise ValueError(f"A pairs dev set needs at least {MIN_PAIRS} pairs, got {len(self.pairs)}")
            if self.queries or self.documents or self.relevant:
                raise ValueError("A pairs dev set must not have queries, documents or relevant sets")
        elif self.kind == "retrieval":
            if len(self.queries) < MIN_QUERIES:
                raise ValueError(f"A retrieval dev set needs at least {MIN_QUERIES} queries, got {len(self.queries)}")
            if len(self.relevant) != len(self.queries):
                raise ValueError(f"relevant has {len(self.relevant)} sets for {len(self.queries)} queries")
            for index, chosen in enumerate(self.relevant):
                if not chosen:
                    raise ValueError(f"Query {index} has no relevant document")
                if not all(0 <= i < len(self.documents) for i in chosen):
                    raise ValueError(f"Query {index} names a document index outside [0, {len(self.documents)})")
            if self.pairs:
                raise ValueError("A retrieval dev set must not have pairs")
        else:
            raise ValueError(f"kind must be 'pairs' or 'retrieval', not {self.kind!r}")

    @property
    def metric(self) -> str:
        """The metric this set is scored with: `"spearman"` or `"ndcg@10"`."""
        return "spearman" if self.kind == "pairs" else "ndcg@10"

    def __len__(self) -> int:
        """Number of pairs, or of queries."""
        return len(self.pairs) if self.kind == "pairs" else len(self.queries)


# ----------------------------------------------------------------------------------------- loading
def _rows(path: Path) -> list[tuple[str, Any]]:
    """Read `(where, row)` items from a `.jsonl` or `.json` file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number}: invalid JSON ({err.msg})") from None
        return out
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON at line {err.lineno} ({err.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json dev set must hold a list of rows, not a {type(data).__name__}")
        return [(f"row {number}", row) for number, row in enumerate(data, start=1)]
    raise ValueError(f"{path}: a dev set must be a .jsonl or .json file, not {path.suffix or 'no suffix'!r}")


def _string(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field} must be a string, not {type(value).__name__}")
    return value


def _strings(value: Any, field: str, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: {field} must be a list of strings, not {type(value).__name__}")
    return [_string(item, f"{field}[{i}]", where) for i, item in enumerate(value)]


def _shape(row: Any) -> str | None:
    if isinstance(row, list):
        return "triple" if len(row) == 3 else None
    if isinstance(row, dict):
        return _ROW_SHAPES.get(frozenset(row))
    return None


def load_dev_set(path: str | os.PathLike[str]) -> DevSet:
    """Load a dev set from a `.jsonl` or `.json` file (row formats: see the module docstring).

    Args:
        path: The file.

    Returns:
        A pairs or retrieval `DevSet` named after the file's stem.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Naming the file and the 1-based line (or row) number: invalid
            JSON, an unknown row shape, rows of both families, a non-string text,
            a non-numeric or non-finite score, a query with no relevant document;
            or, for the whole file, fewer than 3 pairs or fewer than 2 queries.
    """
    path = Path(path)
    rows = _rows(path)
    family: str | None = None
    pairs: list[tuple[str, str, float]] = []
    queries: list[str] = []
    relevant: list[list[str]] = []
    documents: dict[str, int] = {}

    def add(text: str) -> int:
        return documents.setdefault(text, len(documents))

    for position, row in rows:
        where = f"{path}: {position}"
        shape = _shape(row)
        if shape is None:
            keys = sorted(row) if isinstance(row, dict) else f"a {type(row).__name__}"
            raise ValueError(
                f"{where}: unknown row shape ({keys}); expected {{text1, text2, score}}, {{query, relevant"
                f"[, negatives]}}, {{document}}, {{anchor, positive, negative}} or [anchor, positive, negative]"
            )
        if family is None:
            family = _FAMILY[shape]
        elif _FAMILY[shape] != family:
            raise ValueError(f"{where}: a {shape} row in a file of {family} rows (one family per file)")
        if shape == "pair":
            score = row["score"]
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ValueError(f"{where}: score must be a number, not {type(score).__name__}")
            if not math.isfinite(score):
                raise ValueError(f"{where}: score must be finite, not {score}")
            pairs.append((_string(row["text1"], "text1", where), _string(row["text2"], "text2", where), float(score)))
        elif shape == "document":
            add(_string(row["document"], "document", where))
        elif shape == "triple":
            names = ("anchor", "positive", "negative")
            anchor, positive, negative = row if isinstance(row, list) else (row[n] for n in names)
            queries.append(_string(anchor, "anchor", where))
            relevant.append([_string(positive, "positive", where)])
            add(positive)
            add(_string(negative, "negative", where))
        else:
            queries.append(_string(row["query"], "query", where))
            chosen = _strings(row["relevant"], "relevant", where)
            if not chosen:
                raise ValueError(f"{where}: the query has no relevant document")
            relevant.append(chosen)
            for text in [*chosen, *_strings(row.get("negatives", []), "negatives", where)]:
                add(text)

    if family is None:
        raise ValueError(f"{path}: the file holds no rows")
    if family == "pairs":
        if len(pairs) < MIN_PAIRS:
            raise ValueError(f"{path}: a pairs dev set needs at least {MIN_PAIRS} pairs, found {len(pairs)}")
        return DevSet("pairs", pairs=tuple(pairs), name=path.stem)
    if len(queries) < MIN_QUERIES:
        raise ValueError(f"{path}: a retrieval dev set needs at least {MIN_QUERIES} queries, found {len(queries)}")
    return DevSet(
        "retrieval",
        queries=tuple(queries),
        documents=tuple(documents),
        relevant=tuple(frozenset(documents[text] for text in chosen) for chosen in relevant),
        name=path.stem,
    )


# ----------------------------------------------------------------------------------------- metrics
def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    start = 0
    while start < values.size:
        end = start + 1
        while end < values.size and ordered[end] == ordered[start]:
            end += 1
        ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1 .. end
        start = end
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties.

    Returns 0.0 (never NaN) when either side is constant.

    Raises:
        ValueError: Not 1-D, different lengths, fewer than 2 values, or non-finite values.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size:
        raise ValueError(f"spearman needs two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"spearman needs at least 2 values, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("spearman got non-finite values")
    ra = _average_ranks(a) - (a.size + 1) / 2.0
    rb = _average_ranks(b) - (b.size + 1) / 2.0
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return 0.0 if denominator == 0.0 else float(ra @ rb) / denominator


def ndcg_at_10(scores: np.ndarray, relevant: Sequence[frozenset[int] | set[int]]) -> float:
    """Mean nDCG@10 over queries with binary relevance.

    Documents are ranked by descending score; equal scores keep document order.

    Args:
        scores: (queries, documents) similarity matrix.
        relevant: For each query, the indices of its relevant documents (non-empty).

    Raises:
        ValueError: Bad shapes, non-finite scores, or a query with no (or an
            out-of-range) relevant document.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(relevant) or matrix.shape[0] == 0:
        raise ValueError(f"scores must be (queries, documents) with {len(relevant)} queries, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("ndcg_at_10 got non-finite scores")
    discounts = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for query, chosen in enumerate(relevant):
        if not chosen or not all(0 <= i < matrix.shape[1] for i in chosen):
            raise ValueError(f"Query {query} needs relevant document indices in [0, {matrix.shape[1]}), got {chosen}")
        top = np.argsort(-matrix[query], kind="stable")[:10]
        gains = np.array([1.0 if int(i) in chosen else 0.0 for i in top])
        ideal = discounts[: min(10, len(chosen))].sum()
        total += float(gains @ discounts[: gains.size] / ideal)
    return float(total / matrix.shape[0])


def _unit_rows(vectors: Any, rows: int, what: str) -> np.ndarray:
    array = np.asarray(vectors.cpu() if hasattr(vectors, "cpu") else vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != rows:
        raise ValueError(f"{what} must have shape ({rows}, dim), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds non-finite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


def score_dev_set(dev: DevSet, first: Any, second: Any) -> float:
    """Score embeddings on a dev set by cosine similarity.

    Args:
        dev: The dev set.
        first: Embeddings (numpy or torch, need not be normalised) of `text1` of
            every pair, or of every query.
        second: Embeddings of `text2` of every pair, or of every document.

    Returns:
        Spearman of cosine(text1, text2) against the gold scores (pairs), or
        nDCG@10 of the cosine ranking of the documents (retrieval).

    Raises:
        TypeError: `dev` is not a `DevSet`.
        ValueError: An embedding array has the wrong shape or non-finite values.
    """
    if not isinstance(dev, DevSet):
        raise TypeError(f"dev must be a DevSet, not {type(dev).__name__}")
    if dev.kind == "pairs":
        a = _unit_rows(first, len(dev.pairs), "text1 embeddings")
        b = _unit_rows(second, len(dev.pairs), "text2 embeddings")
        return spearman((a * b).sum(axis=1), [score for _, _, score in dev.pairs])
    queries = _unit_rows(first, len(dev.queries), "query embeddings")
    documents = _unit_rows(second, len(dev.documents), "document embeddings")
    return ndcg_at_10(queries @ documents.T, dev.relevant)
