"""Attention kernels: the mask-free causal paths equal the explicit-mask ones, and unpadded batches skip the mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaembed import PROMPTS, READOUTS, Embedder, KVReroute, Recipe
from vaembed.engine import kernels
from vaembed.engine.kernels import attend

TEXTS = ["a fox", "the quick brown fox jumps over the lazy dog", "embeddings map texts to vectors"]


def _random(batch=2, heads=4, groups=2, length=7, size=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(batch, heads, length, size, generator=generator)
    key = torch.randn(batch, groups, length, size, generator=generator)
    value = torch.randn(batch, groups, length, size, generator=generator)
    return query, key, value


@pytest.mark.parametrize(
    ("bias", "prefix"), [(-30.0, 1), (0.0, 1), (1.0, 1), (3.0, 1), (1e4, 1), (-30.0, 2), (1.0, 2), (3.0, 2)]
)
def test_causal_prefix_without_a_mask_equals_the_explicit_mask(bias, prefix):
    """Within 1e-5 for the biases KV-Embedding uses (and one prefix column at a huge bias); the extra head
    dimension carries `bias / scale`, so float32 rounding grows with |bias| when several prefix columns compete."""
    query, key, value = _random()
    prefix_key, prefix_value = key[:, :, -prefix:], value[:, :, -prefix:]
    causal = torch.ones(7, 7, dtype=torch.bool).tril().expand(2, 1, 7, 7)
    prefixed = {"prefix_key": prefix_key, "prefix_value": prefix_value, "prefix_bias": bias}
    fast = attend(query, key, value, None, scale=0.3, **prefixed)
    masked = attend(query, key, value, causal, scale=0.3, **prefixed)
    torch.testing.assert_close(fast, masked, atol=1e-5, rtol=1e-5)
    if bias >= 0:
        assert (fast - attend(query, key, value, None, scale=0.3)).abs().max() > 1e-3  # the prefix changed it


def test_minus_inf_bias_is_plain_attention_on_both_paths():
    query, key, value = _random()
    causal = torch.ones(7, 7, dtype=torch.bool).tril().expand(2, 1, 7, 7)
    plain = attend(query, key, value, None, scale=0.3)
    for mask in (None, causal):
        off = attend(query, key, value, mask, scale=0.3, prefix_key=key[:, :, -1:], prefix_value=value[:, :, -1:],
                     prefix_bias=-math.inf)  # fmt: skip
        torch.testing.assert_close(off, plain, atol=1e-6, rtol=1e-6)


def _sdpa_calls(monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((kwargs.get("attn_mask") is None, kwargs.get("is_causal")))
        return original(*args, **kwargs)

    monkeypatch.setattr(kernels.F, "scaled_dot_product_attention", spy)
    return calls


@pytest.mark.parametrize("preset", ["va", "kv", "hs-mean"])
def test_an_unpadded_batch_runs_every_layer_without_a_mask(tiny_llama, monkeypatch, preset):
    model, tokenizer = tiny_llama
    layers = [1, 2] if preset in ("va", "kv") else None
    embedder = Embedder(model, tokenizer, preset, layers=layers, postprocess="none")  # no statistics pass to spy on
    calls = _sdpa_calls(monkeypatch)
    alone = embedder.encode(TEXTS[1], normalize=False)
    assert calls and all(no_mask and causal for no_mask, causal in calls)  # rerouted layers too
    calls.clear()
    batched = embedder.encode(TEXTS, normalize=False)  # padded: the explicit mask
    assert calls and not any(no_mask for no_mask, _ in calls)
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_kv_vectors_of_the_fast_path_equal_those_of_padded_batches_on_every_family(tiny, padding_side):
    model, tokenizer = tiny
    recipe = Recipe(PROMPTS["compress"], READOUTS["hidden_hybrid"], "final", KVReroute(layers=[0, 2], bias=2.0))
    embedder = Embedder(model, tokenizer, recipe, padding_side=padding_side)
    alone = np.stack([embedder.encode(text, normalize=False) for text in TEXTS])
    batched = embedder.encode(TEXTS, normalize=False)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
