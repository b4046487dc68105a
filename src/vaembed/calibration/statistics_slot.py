"""The post-processing an embedder applies, with its statistics obtained on first use.

An `Embedder` holds one `StatisticsSlot` per recipe. Making an embedder (or
`with_recipe`) runs nothing: the bundled-corpus statistics are read from the
cache, or computed once, the first time a vector is post-processed (or the
statistics are asked for). `fit` replaces them with statistics of the user's
own texts. Threads that embed at once compute them once.

`ranges` gives the per-dimension lows and highs of the final vectors (this
transform, then optionally L2 normalisation) over the bundled corpus, which
int8/uint8 quantisation buckets by; one corpus pass gives both `normalize` settings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.statistics import EmbeddingStatistics, compute_statistics, corpus_vectors, obtain_statistics
from vaembed.engine.batching import combine_chunks
from vaembed.engine.runner import Runner
from vaembed.recipes.postprocess import PostProcess, Transform, check_postprocess
from vaembed.recipes.recipe import ResolvedRecipe

__all__ = ["StatisticsSlot"]


class StatisticsSlot:
    """The statistics and transform of one (runner, resolved recipe, mode), obtained lazily.

    Args:
        runner: The model's batch runner.
        recipe: The resolved recipe whose raw vectors are post-processed.
        mode: `"none"`, `"center"` or `"standardize"`.
    """

    def __init__(self, runner: Runner, recipe: ResolvedRecipe, mode: PostProcess) -> None:
        self.runner, self.recipe, self.mode = runner, recipe, check_postprocess(mode)
        self._lock = threading.Lock()
        self._statistics: EmbeddingStatistics | None = None
        self._transform: Transform | None = None
        self._ranges: dict[bool, np.ndarray] = {}

    @property
    def statistics(self) -> EmbeddingStatistics | None:
        """The statistics (None for `"none"`): from the cache, or computed once, on first use."""
        if self._statistics is None and self.mode != "none":
            with self._lock:
                if self._statistics is None:
                    statistics = obtain_statistics(self.runner, self.recipe)
                    self._transform = statistics.transform(self.mode)
                    self._statistics = statistics
        return self._statistics

    @property
    def transform(self) -> Transform | None:
        """The transform applied before normalisation (None for `"none"`)."""
        return self._transform if self.statistics is not None else None

    def ranges(self, normalize: bool = True) -> np.ndarray:
        """`(2, dimension)` per-dimension lows and highs of the final vectors over the bundled corpus.

        Each corpus text is a document cut to `STATISTICS_MAX_TOKENS` tokens (as for the statistics);
        one pass gives the ranges of both `normalize` settings.
        """
        transform = self.transform  # outside the lock: obtaining statistics takes it too
        with self._lock:
            if not self._ranges:
                texts = bundled_corpus().texts
                sequences, raw = corpus_vectors(self.runner, self.recipe, texts)
                vectors = transform(raw) if transform is not None else raw
                for unit in (False, True):
                    found = combine_chunks(sequences, vectors, len(texts), unit).double().numpy()
                    ranges = np.stack([found.min(axis=0), found.max(axis=0)])
                    ranges.setflags(write=False)
                    self._ranges[unit] = ranges
            return self._ranges[bool(normalize)]

    def fitted(self, texts: Iterable[str], mode: PostProcess, *, max_tokens: int) -> StatisticsSlot:
        """A slot holding statistics of `texts` instead of the bundled corpus (this one is unchanged).

        Raises:
            ValueError: `mode` is `"none"`, or fewer than 3 distinct texts.
            TypeError: A text is not a str.
        """
        if check_postprocess(mode) == "none":
            raise ValueError("fit_postprocess needs a mode: pass mode='center' or 'standardize'")
        statistics = compute_statistics(self.runner, self.recipe, texts, max_tokens=max_tokens)
        slot = StatisticsSlot(self.runner, self.recipe, mode)
        slot._statistics, slot._transform = statistics, statistics.transform(mode)
        return slot
