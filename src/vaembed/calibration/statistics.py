"""Embedding statistics for post-processing: the mean and spread of a recipe's raw vectors over a corpus.

`compute_statistics` runs a resolved recipe over the bundled calibration corpus
(or the user's texts), each text wrapped in the document prompt and cut to
`max_tokens` tokens, and keeps the per-dimension mean and standard deviation
of the unnormalised vectors. `obtain_statistics` caches them beside the
calibration profiles: `<cache>/statistics/<family>-<hash>.json`, the hash
covering the model's identity (config, weights sample, depth; as profiles),
the resolved recipe (prompt, readout, concrete layers, intervention), the
corpus and `max_tokens`. Files are JSON, written atomically; one that cannot be
read, is for another model, recipe or corpus, or comes from an incompatible
version is recomputed with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vaembed.cache import atomic_file, cache_dir, path_lock
from vaembed.calibration.corpus import bundled_corpus, user_corpus
from vaembed.calibration.profile import ModelIdentity, ProfileError
from vaembed.calibration.run import model_identity
from vaembed.engine.forward_pass import PassPlan
from vaembed.engine.runner import Runner
from vaembed.engine.tokenization import TokenSequence
from vaembed.recipes.postprocess import PostProcess, Transform
from vaembed.recipes.recipe import ResolvedRecipe
from vaembed.version import __version__

__all__ = [
    "STATISTICS_FORMAT",
    "STATISTICS_MAX_TOKENS",
    "EmbeddingStatistics",
    "compute_statistics",
    "corpus_vectors",
    "obtain_statistics",
    "recipe_key",
    "statistics_path",
]

logger = logging.getLogger(__name__)

STATISTICS_FORMAT = 1
STATISTICS_MAX_TOKENS = 128
"""Each corpus text is cut to this many tokens (prompt included); the bundled corpus holds about 25,000 then."""


def recipe_key(recipe: ResolvedRecipe) -> str:
    """What of a resolved recipe decides its raw vectors: prompt, readout, concrete layers, intervention."""
    return repr(replace(recipe, layers_target="readout"))


@dataclass(frozen=True)
class EmbeddingStatistics:
    """Per-dimension mean and standard deviation of one recipe's raw vectors over a corpus.

    Attributes:
        model: The model's identity.
        recipe: `recipe_key` of the resolved recipe.
        corpus: The corpus description (`name`, `licence`, `texts`, `sha256`).
        max_tokens: Tokens each text was cut to.
        mean: Per-dimension mean.
        std: Per-dimension standard deviation.
        seconds: Time the computation took.
        library_version: The vaembed version that wrote it.
        format: The JSON layout version.
    """

    model: ModelIdentity
    recipe: str
    corpus: dict[str, Any]
    max_tokens: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    seconds: float
    library_version: str = __version__
    format: int = STATISTICS_FORMAT

    def transform(self, mode: PostProcess) -> Transform:
        """The post-processing transform of `mode` (`"center"` or `"standardize"`) from these statistics."""
        return Transform.from_statistics(mode, torch.tensor(self.mean), torch.tensor(self.std))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as JSON, atomically; return the path."""
        with atomic_file(path) as stream:
            json.dump(asdict(self), stream)
            stream.write("\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddingStatistics:
        """Read a file `save` wrote, checking every field.

        Raises:
            ProfileError: The file cannot be read, is malformed or of another format or version.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != STATISTICS_FORMAT:
                raise ProfileError(f"statistics format {data.get('format')!r}, this library reads {STATISTICS_FORMAT}")
            if tuple(str(data["library_version"]).split(".")[:2]) != tuple(__version__.split(".")[:2]):
                raise ProfileError(f"written by vaembed {data['library_version']}, incompatible with {__version__}")
            mean, std = _floats(data["mean"]), _floats(data["std"])
            if len(mean) != len(std) or not mean or min(std) < 0:
                raise ValueError("mean and std must be non-empty, of one length, std >= 0")
            return cls(ModelIdentity(**data["model"]), str(data["recipe"]), dict(data["corpus"]),
                       int(data["max_tokens"]), mean, std, float(data["seconds"]),
                       str(data["library_version"]), STATISTICS_FORMAT)  # fmt: skip
        except ProfileError as error:
            raise ProfileError(f"embedding statistics {os.fspath(path)}: {error}") from error
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ProfileError(f"embedding statistics {os.fspath(path)}: {type(error).__name__}: {error}") from error

    def matches(self, identity: ModelIdentity, recipe: str, corpus_sha: str, max_tokens: int) -> bool:
        """Whether these statistics are for this model, recipe, corpus and cut."""
        return (
            self.model.matches(identity)
            and self.recipe == recipe
            and self.corpus.get("sha256") == corpus_sha
            and self.max_tokens == max_tokens
        )


def _floats(values: Any) -> tuple[float, ...]:
    out = tuple(float(value) for value in values)
    if not all(math.isfinite(value) for value in out):
        raise ValueError("non-finite statistics")
    return out


def corpus_vectors(
    runner: Runner,
    recipe: ResolvedRecipe,
    texts: Sequence[str],
    *,
    max_tokens: int = STATISTICS_MAX_TOKENS,
    batch_size: int = 16,
) -> tuple[list[TokenSequence], torch.Tensor]:
    """`recipe`'s raw (unprocessed) vectors of `texts`, each a document cut to `max_tokens` tokens.

    Returns:
        The sequences (one per text) and one float32 row per text.
    """
    sequences, _ = runner.tokenizer_for(max_tokens).encode(list(texts), recipe.prompt, "document", "truncate")
    (readings,) = runner.read(sequences, [PassPlan(recipe, runner.num_layers)], batch_size=batch_size)
    return sequences, readings.vectors


def compute_statistics(
    runner: Runner,
    recipe: ResolvedRecipe,
    texts: Iterable[str] | None = None,
    *,
    max_tokens: int = STATISTICS_MAX_TOKENS,
    batch_size: int = 16,
) -> EmbeddingStatistics:
    """Run `recipe` over a corpus (the bundled one when `texts` is None) and keep its raw vectors' statistics.

    Raises:
        TypeError: A text is not a str.
        ValueError: Fewer than 3 distinct texts.
        FloatingPointError: The model produced NaN or Inf.
    """
    corpus = bundled_corpus() if texts is None else user_corpus(texts)
    start = time.perf_counter()
    _, raw = corpus_vectors(runner, recipe, corpus.texts, max_tokens=max_tokens, batch_size=batch_size)
    vectors = raw.double()
    return EmbeddingStatistics(
        model=model_identity(runner),
        recipe=recipe_key(recipe),
        corpus=corpus.describe(),
        max_tokens=max_tokens,
        mean=tuple(vectors.mean(dim=0).tolist()),
        std=tuple(vectors.std(dim=0, unbiased=False).tolist()),
        seconds=round(time.perf_counter() - start, 3),
    )


def statistics_path(identity: ModelIdentity, recipe: str, corpus_sha: str, max_tokens: int) -> Path:
    """`<cache>/statistics/<family>-<hash16>.json` for a model, recipe, corpus and cut."""
    key = ":".join([identity.config_hash, identity.weights_hash, str(identity.num_layers), recipe, corpus_sha])
    key += f":{max_tokens}"
    family = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.family).strip("._") or "model"
    return cache_dir() / "statistics" / f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def obtain_statistics(
    runner: Runner, recipe: ResolvedRecipe, *, max_tokens: int = STATISTICS_MAX_TOKENS
) -> EmbeddingStatistics:
    """The bundled-corpus statistics of `recipe` on this model: read from the cache, or computed once and saved."""
    identity, key, sha = model_identity(runner), recipe_key(recipe), bundled_corpus().describe()["sha256"]
    path = statistics_path(identity, key, sha, max_tokens)
    with path_lock(path):  # processes starting together compute once; the others wait, then read
        if path.exists():
            try:
                found = EmbeddingStatistics.load(path)
                if found.matches(identity, key, sha, max_tokens):
                    return found
                warnings.warn(f"embedding statistics {path} are for another model or recipe; recomputing", stacklevel=4)
            except ProfileError as error:
                warnings.warn(f"{error}; recomputing", stacklevel=4)
        logger.warning("Computing embedding statistics for %s (once; saved to %s)", runner.name, path)
        statistics = compute_statistics(runner, recipe, max_tokens=max_tokens)
        statistics.save(path)
        return statistics
