"""Calibration texts: the corpus bundled with vaembed, or the user's own.

The bundled corpus (`vaembed/data/calibration_corpus.json`) holds 330 English
texts written for vaembed and released under CC0-1.0: thirty topics, each with
short (one sentence), medium (a paragraph) and long (two paragraphs) texts in
varied registers. Its order is shuffled once, so any prefix mixes topics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CalibrationCorpus", "bundled_corpus", "user_corpus"]

RECOMMENDED_MINIMUM = 200
"""Fewer calibration texts than this make the ID estimates noisy (a warning is given)."""


@dataclass(frozen=True)
class CalibrationCorpus:
    """Texts for layer calibration and how to describe them in a profile.

    Attributes:
        name: A short name (`"bundled"` or `"user"`).
        licence: The texts' licence, when known.
        texts: The texts, distinct, in order.
    """

    name: str
    licence: str
    texts: tuple[str, ...]

    def head(self, n: int | None) -> CalibrationCorpus:
        """The first `n` texts (all when None).

        Raises:
            ValueError: `n` is not a positive int.
        """
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int or None, not {n!r}")
        return CalibrationCorpus(self.name, self.licence, self.texts[:n])

    def describe(self) -> dict[str, Any]:
        """The profile's corpus entry: name, licence, count and a SHA-256 of the texts."""
        digest = hashlib.sha256()
        for text in self.texts:
            digest.update(text.encode("utf-8"))
            digest.update(b"\0")
        return {"name": self.name, "licence": self.licence, "texts": len(self.texts), "sha256": digest.hexdigest()}


@cache
def bundled_corpus() -> CalibrationCorpus:
    """The corpus shipped with vaembed (see the module docstring)."""
    data = json.loads(resources.files("vaembed").joinpath("data", "calibration_corpus.json").read_text("utf-8"))
    return CalibrationCorpus("bundled", data["licence"], tuple(entry["text"] for entry in data["texts"]))


def user_corpus(texts: Iterable[str]) -> CalibrationCorpus:
    """The user's texts, exact duplicates dropped (first occurrence kept).

    Raises:
        TypeError: `texts` is a single string, or an item is not a str (the index is named).
        ValueError: Fewer than 3 distinct texts.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of str, not a single string")
    seen: dict[str, None] = {}
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be str, not {type(text).__name__}")
        seen.setdefault(text, None)
    if len(seen) < 3:
        raise ValueError(f"calibration needs at least 3 distinct texts, got {len(seen)}")
    return CalibrationCorpus("user", "", tuple(seen))
