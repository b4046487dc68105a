"""max_length and the long-text policies: truncate, chunk, error."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from vaembed import Embedder
from vaembed.engine.tokenization import TextTooLongError

WORDS = "the quick brown fox jumps over the lazy dog while numbers 0123 pass by".split()
LONG = " ".join(WORDS[i % len(WORDS)] for i in range(300))


def test_truncate_warns_once_with_the_count_and_keeps_the_prompt(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "prompteol", max_length=48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = embedder.encode([LONG, "short", LONG + " more"])
    messages = [str(w.message) for w in caught]
    assert messages == ["2 of 3 texts were truncated to max_length=48 tokens"]
    assert np.isfinite(out).all()
    sequences, shortened = embedder.text_tokenizer.encode([LONG], embedder.recipe.prompt, "document", "truncate")
    suffix = tokenizer('" means in one word:"', add_special_tokens=False)["input_ids"]
    assert shortened == 1 and len(sequences) == 1
    assert 40 <= len(sequences[0].ids) <= 48
    assert list(sequences[0].ids[-len(suffix) :]) == suffix  # the instruction survives


def test_error_policy_names_the_text_and_its_length(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", max_length=32, long_text="error")
    with pytest.raises(ValueError, match=r"texts\[1\] has \d+ tokens with its prompt, over max_length=32") as info:
        embedder.encode(["short", LONG])
    error = info.value
    assert isinstance(error, TextTooLongError) and (error.index, error.max_length) == (1, 32) and error.tokens > 32
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.index, copy.tokens, copy.max_length, str(copy)) == (1, error.tokens, 32, str(error))


def test_chunk_is_the_token_weighted_mean_of_its_windows(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "echo", max_length=64, long_text="chunk", postprocess="none")
    sequences, shortened = embedder.text_tokenizer.encode([LONG], embedder.recipe.prompt, "document", "chunk")
    assert shortened == 1 and len(sequences) > 2
    assert all(len(s.ids) <= 64 for s in sequences)
    text_tokens = len(tokenizer(LONG, add_special_tokens=False)["input_ids"])
    assert abs(sum(s.weight for s in sequences) - text_tokens) <= len(sequences)  # windows cover the text
    parts = torch.stack([embedder.run_pass([s]).result()[0] for s in sequences])
    weights = torch.tensor([float(s.weight) for s in sequences]).unsqueeze(1)
    expected = torch.nn.functional.normalize(
        (torch.nn.functional.normalize(parts, dim=-1) * weights).sum(0) / weights.sum(), dim=0
    )
    got = embedder.encode([LONG, "short text"])
    assert np.abs(got[0] - expected.numpy()).max() <= 1e-5
    short_alone = embedder.encode(["short text"])
    assert np.abs(got[1] - short_alone[0]).max() <= 1e-5


def test_chunk_without_normalisation_weights_raw_vectors(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", max_length=40, long_text="chunk", postprocess="none")
    sequences, _ = embedder.text_tokenizer.encode([LONG], embedder.recipe.prompt, "document", "chunk")
    parts = torch.stack([embedder.run_pass([s]).result()[0] for s in sequences])
    weights = torch.tensor([float(s.weight) for s in sequences]).unsqueeze(1)
    expected = (parts * weights).sum(0) / weights.sum()
    got = embedder.encode(LONG, normalize=False)
    assert np.abs(got - expected.numpy()).max() <= 1e-5


def test_default_max_length_is_the_context_capped_at_8192(tiny_llama):
    model, tokenizer = tiny_llama
    assert Embedder(model, tokenizer).max_length == model.config.max_position_embeddings == 256


@pytest.mark.parametrize("max_length", [0, -3, 257, 2.5, True])
def test_bad_max_length_is_rejected(tiny_llama, max_length):
    model, tokenizer = tiny_llama
    with pytest.raises(ValueError, match="max_length"):
        Embedder(model, tokenizer, max_length=max_length)


def test_max_length_too_small_for_the_prompt(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "prompteol", max_length=8)
    with pytest.raises(ValueError, match="leaves no room for text"):
        embedder.encode(LONG)


def test_unknown_long_text_policy(tiny_llama):
    model, tokenizer = tiny_llama
    with pytest.raises(ValueError, match="long_text"):
        Embedder(model, tokenizer, long_text="drop")


def test_echo_pools_over_the_second_copy_only(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "echo")
    formatted = embedder.recipe.prompt.format("fox dog", "document")
    sequences, _ = embedder.text_tokenizer.encode(["fox dog"], embedder.recipe.prompt, "document", "error")
    offsets = tokenizer(formatted.string, return_offsets_mapping=True)["offset_mapping"]
    first, second = formatted.text_spans
    pooled = [offsets[i] for i, keep in enumerate(sequences[0].pool_mask) if keep]
    assert len(pooled) >= 2
    assert all(start < second[1] and end > second[0] for start, end in pooled)  # inside the second copy
    assert all(start >= first[1] for start, _ in pooled)  # nothing of the first copy
