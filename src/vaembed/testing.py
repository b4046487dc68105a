"""Tiny random models for tests, built offline from config classes.

Used by vaembed's own tests and by the adapters' tests; handy for testing code
built on vaembed without downloading a model. The tokenizer is a byte-level
BPE trained in memory, so any text tokenizes. `use_test_cache` points the
cache at a fresh folder for this process, so tests never read or write a
user's converted models or calibration profiles.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from vaembed.cache import CACHE_ENV
from vaembed.engine.attention import SUPPORTED_MODEL_TYPES

__all__ = [
    "FAMILIES",
    "TRAINING_TEXTS",
    "build_tokenizer",
    "build_config",
    "build_model",
    "save_tiny_gguf",
    "save_tiny_model",
    "tiny_model_folder",
    "use_test_cache",
]

TRAINING_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "Embeddings map texts to vectors; similar texts land close together.",
    "This sentence : means in one word: Context: Compress the context Query: Document again",
    "Numbers 0123456789 and punctuation !?.,;:'\"()[]{}<> PST",
] * 20

FAMILIES = SUPPORTED_MODEL_TYPES
"""Every supported family; `build_config` has a tiny config for each."""

_TEST_CACHE_ENV = "VAEMBED_TEST_CACHE"


def use_test_cache() -> Path:
    """Point `$VAEMBED_CACHE` at one fresh folder per process (removed at exit) and return it.

    Also asks Hugging Face libraries to stay offline unless told otherwise.
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    folder = os.environ.get(_TEST_CACHE_ENV)
    if folder is None:
        folder = tempfile.mkdtemp(prefix="vaembed-test-cache-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ[_TEST_CACHE_ENV] = folder
    os.environ[CACHE_ENV] = folder
    return Path(folder)


def build_tokenizer(add_bos: bool) -> Any:
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
    tokenizer.train_from_iterator(TRAINING_TEXTS, trainer)
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_config(family: str) -> Any:
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
        tie_word_embeddings=True,  # as the small real models: the LM head is the input embeddings
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


def build_model(family: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random base model of `family` in eval mode (seeded, so reproducible).

    Random initialisation zeroes the padding token's embedding row; a pretrained
    checkpoint has no all-zero row (a text that is just the pad token's string
    embeds like any other), so that row is drawn like the others.
    """
    from transformers import AutoModel

    torch.manual_seed(seed)
    config = build_config(family)
    model = AutoModel.from_config(config, dtype=torch.float32)
    if config.pad_token_id is not None:
        with torch.no_grad():
            table = model.get_input_embeddings().weight
            table[config.pad_token_id].normal_(0.0, config.initializer_range)
    model.eval()
    return model


def save_tiny_model(folder: str | os.PathLike[str], family: str = "llama") -> Path:
    """Save a tiny model and its tokenizer as a local model folder (loadable by `Embedder.from_pretrained`)."""
    folder = Path(folder)
    build_model(family).save_pretrained(folder)
    build_tokenizer(family.startswith("gemma")).save_pretrained(folder)
    return folder


@functools.cache
def tiny_model_folder(family: str = "llama") -> Path:
    """A tiny model folder of `family`, saved once per process inside the test cache."""
    return save_tiny_model(use_test_cache() / "tiny-models" / family, family)


def save_tiny_gguf(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny random llama model as a GGUF file (float32 tensors, byte-level BPE vocabulary).

    2 layers, hidden 32, 4 query and 2 KV heads: `Embedder.from_pretrained(path)` converts it
    once into the cache in well under a second, as it would a real model's GGUF file.
    """
    import json

    import gguf
    import numpy as np

    backend = json.loads(build_tokenizer(False).backend_tokenizer.to_str())["model"]
    tokens = sorted(backend["vocab"], key=backend["vocab"].get)
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["merges"]]
    hidden, layers, ffn, heads, kv_heads = 32, 2, 64, 4, 2
    kv_width = kv_heads * hidden // heads
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token in ("<pad>", "<s>", "</s>") else 1 for token in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(False)
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    tensor("token_embd.weight", len(tokens), hidden)
    for block in range(layers):
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{block}.{norm}.weight", np.ones(hidden, np.float32))
        tensor(f"blk.{block}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{block}.attn_k.weight", kv_width, hidden)
        tensor(f"blk.{block}.attn_v.weight", kv_width, hidden)
        tensor(f"blk.{block}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{block}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{block}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{block}.ffn_down.weight", hidden, ffn)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
