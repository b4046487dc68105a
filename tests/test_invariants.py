"""METHODS.md invariants on tiny random models of every supported family."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from vaembed import (
    PRESET_RECIPES,
    PROMPTS,
    READOUTS,
    AttentionOutput,
    Embedder,
    HiddenStates,
    KVReroute,
    Recipe,
    ValueVectors,
    WeightedValues,
)

TEXTS = [
    "short one",
    "a somewhat longer text about the quick brown fox that jumps over the lazy dog",
    "mid length text here, with punctuation!",
    "x",
]
LONG_TEXT = "the quick brown fox jumps over the lazy dog again and again"


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("preset", list(PRESET_RECIPES))
def test_batch_and_padding_invariance(tiny, preset):
    model, tokenizer = tiny
    right = Embedder(model, tokenizer, preset)
    left = Embedder(model, tokenizer, preset, padding_side="left")
    alone = np.stack([right.encode([text], normalize=False)[0] for text in TEXTS])
    mixed = right.encode(TEXTS, batch_size=4, normalize=False)
    mixed_left = left.encode(TEXTS, batch_size=4, normalize=False)
    pairs = left.encode(TEXTS, batch_size=2, normalize=False)
    assert _max_diff(alone, mixed) <= 1e-4
    assert _max_diff(alone, mixed_left) <= 1e-4
    assert _max_diff(alone, pairs) <= 1e-4
    assert np.isfinite(alone).all()
    assert _max_diff(alone[0], alone[1]) > 1e-3  # different texts really differ


def _layer_input(model, layer: int, run) -> torch.Tensor:
    """Run `run()` and return the residual stream entering `layer` (recorded by a plain torch hook)."""
    seen = {}

    def hook(module, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    handle = model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return seen["x"]


def _pooled_positions(tokenizer, text: str) -> list[int]:
    mask = tokenizer(text, return_special_tokens_mask=True)["special_tokens_mask"]
    return [i for i, special in enumerate(mask) if not special]


@pytest.mark.parametrize("layer", [0, 2])
def test_values_equal_v_proj_of_normed_input(tiny, layer):
    model, tokenizer = tiny
    embedder = Embedder(model, tokenizer, Recipe(PROMPTS["none"], ValueVectors("mean"), [layer]))
    result = {}
    x = _layer_input(model, layer, lambda: result.update(v=embedder.encode([LONG_TEXT], normalize=False)[0]))
    block = model.layers[layer]
    with torch.no_grad():
        values = block.self_attn.v_proj(block.input_layernorm(x[0]))
    expected = values[_pooled_positions(tokenizer, LONG_TEXT)].mean(dim=0).numpy()
    assert result["v"].shape == (model.config.num_key_value_heads * 12,)
    assert _max_diff(result["v"], expected) <= 1e-4


@pytest.mark.parametrize("layer", [1, 3])
def test_mixed_and_attention_readouts_match_eager_attention(tiny, layer):
    """u[l][n] = sum_j alpha[h][n][j] v[g(h)][j] from transformers' own eager attention; a = o_proj(u)."""
    model, tokenizer = tiny
    weighted = Embedder(model, tokenizer, Recipe(PROMPTS["none"], READOUTS["value_weighted"], [layer]))
    aligned = weighted.with_recipe(Recipe(PROMPTS["none"], READOUTS["attention_last"], [layer]))
    got_u = weighted.encode([LONG_TEXT], normalize=False)[0]
    got_a = aligned.encode([LONG_TEXT], normalize=False)[0]

    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    ids = torch.tensor([tokenizer(LONG_TEXT)["input_ids"]])
    with torch.no_grad():
        out = {}
        x = _layer_input(reference, layer, lambda: out.update(o=reference(input_ids=ids, output_attentions=True)))
        block = reference.layers[layer]
        alpha = out["o"].attentions[layer][0]  # (H, T, T)
        heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
        values = block.self_attn.v_proj(block.input_layernorm(x[0])).view(ids.shape[1], kv_heads, -1)
        last = ids.shape[1] - 1
        u = torch.stack([alpha[h, last] @ values[:, h // (heads // kv_heads)] for h in range(heads)]).flatten()
        a = block.self_attn.o_proj(u)
    assert _max_diff(got_u, u.numpy()) <= 1e-4
    assert _max_diff(got_a, a.numpy()) <= 1e-4


@pytest.mark.parametrize("readout", ["hidden_hybrid", "value_mean", "attention_last"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_kv_reroute_with_minus_inf_bias_is_the_plain_model(tiny, readout, padding_side):
    model, tokenizer = tiny
    base = Recipe(PROMPTS["compress"], READOUTS[readout], [2, 3] if readout != "hidden_hybrid" else "final")
    plain = Embedder(model, tokenizer, base, padding_side=padding_side)
    off = plain.with_recipe(replace(base, intervention=KVReroute(layers=[0, 1, 2], bias=-math.inf)))
    on = plain.with_recipe(replace(base, intervention=KVReroute(layers=[0, 1, 2], bias=1.0)))
    expected = plain.encode(TEXTS, normalize=False)
    assert _max_diff(off.encode(TEXTS, normalize=False), expected) <= 1e-4
    assert _max_diff(on.encode(TEXTS, normalize=False), expected) > 1e-3  # rerouting changes the pass


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_kv_prefix_is_the_final_token_visible_to_every_query(tiny, padding_side):
    """With a huge bias every query attends only to the prefix, so u[t] = v[n] at every position t,
    also beyond the sliding window and at the first position under the causal mask."""
    model, tokenizer = tiny
    layer = 1
    rerouted = Recipe(PROMPTS["none"], WeightedValues("mean"), [layer], KVReroute(layers=[layer], bias=1e4))
    embedder = Embedder(model, tokenizer, rerouted, padding_side=padding_side)
    last_values = embedder.with_recipe(Recipe(PROMPTS["none"], ValueVectors("last"), [layer]))
    mixed = embedder.encode(TEXTS, normalize=False)
    values = last_values.encode(TEXTS, normalize=False)
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    per_head = values.reshape(len(TEXTS), kv_heads, -1)
    expected = np.stack([per_head[:, h // (heads // kv_heads)] for h in range(heads)], axis=1).reshape(len(TEXTS), -1)
    assert _max_diff(mixed, expected) <= 1e-4


@pytest.mark.parametrize(
    "readout",
    [ValueVectors("mean"), WeightedValues("last"), AttentionOutput("hybrid"), HiddenStates("mean")],
)
def test_early_exit_is_bit_identical_and_skips_later_layers(tiny, readout):
    model, tokenizer = tiny
    embedder = Embedder(model, tokenizer, Recipe(PROMPTS["prompteol"], readout, [0, 1]))
    sequences, _ = embedder.text_tokenizer.encode(TEXTS, embedder.recipe.prompt, "document", "error")
    calls = []
    handle = model.layers[-1].register_forward_hook(lambda *args: calls.append(1))
    try:
        early = embedder.run_pass(sequences).result()
        assert calls == []  # the last layer never ran
        full = embedder.run_pass(sequences, replace(embedder.plan, early_exit=False)).result()
        assert calls == [1]
    finally:
        handle.remove()
    assert embedder.plan.stop_after == 1
    assert torch.equal(early, full)


def test_every_preset_has_its_documented_dimension(tiny):
    model, tokenizer = tiny
    config = model.config
    hidden, values, mixed = config.hidden_size, config.num_key_value_heads * 12, config.num_attention_heads * 12
    expected = {
        "hs-mean": hidden,
        "hs-last": hidden,
        "prompteol": hidden,
        "echo": hidden,
        "token-prepending": hidden,
        "va": values,
        "wva": mixed,
        "aligned-wva": hidden,
        "kv": hidden,
    }
    assert set(expected) == set(PRESET_RECIPES)
    embedder = Embedder(model, tokenizer)
    for preset, dimension in expected.items():
        other = embedder.with_recipe(preset)
        vectors = other.encode(TEXTS)
        assert other.dimension == dimension
        assert vectors.shape == (len(TEXTS), dimension) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_token_prepending_overwrites_the_placeholder_with_the_last_token(tiny):
    model, tokenizer = tiny
    embedder = Embedder(model, tokenizer, "token-prepending")
    early = embedder.plan.recipe.intervention.layers
    assert early == (0,)  # first quarter of 4 layers
    sequences, _ = embedder.text_tokenizer.encode(["a fox"], embedder.recipe.prompt, "document", "error")
    placeholder, last = sequences[0].placeholder, len(sequences[0].ids) - 1
    inputs = {}
    for layer in (0, 1):
        inputs[layer] = _layer_input(model, layer, lambda: embedder.encode(["a fox"]))[0]
    assert torch.equal(inputs[0][placeholder], inputs[0][last])
    assert not torch.allclose(inputs[1][placeholder], inputs[1][last])  # layer 1 is not overwritten


def _decode_last_with_cache(model, ids: torch.Tensor) -> torch.Tensor:
    """Hidden state of the last token, computed by decoding it against a cache of the others."""
    prefix = model(input_ids=ids[:, :-1], use_cache=True)
    return model(input_ids=ids[:, -1:], past_key_values=prefix.past_key_values, use_cache=True).last_hidden_state


def test_plain_use_of_the_model_is_unchanged(tiny):
    """Outside an embedding pass the registered attention is ordinary causal attention,
    also when decoding with a cache (the model can still serve generation)."""
    model, tokenizer = tiny
    Embedder(model, tokenizer)  # switches the model to the registered attention
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    encoded = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    valid = encoded["attention_mask"].bool()
    ids = tokenizer(LONG_TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(
            model(**encoded).last_hidden_state[valid], reference(**encoded).last_hidden_state[valid], atol=1e-4
        )
        full = reference(input_ids=ids).last_hidden_state[:, -1:]
        assert torch.allclose(_decode_last_with_cache(model, ids), full, atol=1e-4)
