"""A readout and an intervention defined here, in the test file only, run through `Embedder` unchanged.

This is the extension path the README describes: a readout is one `Readout`
subclass registered by name; an intervention is one `Intervention` subclass.
Neither touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from vaembed import INTERVENTIONS, PROMPTS, READOUTS, Embedder, Recipe, ValueVectors, WeightedValues
from vaembed.recipes import Intervention, get_readout, register_intervention, register_readout
from vaembed.recipes.pooling import TokenPositions

TEXTS = ["a fox jumps over the lazy dog", "short", "embeddings map texts to vectors, similar texts land close"]
LAYER = 2


@dataclass(frozen=True)
class MaxValues(ValueVectors):
    """Max-pooled value vectors: the largest value of each channel over the pooled tokens."""

    kind: ClassVar[str] = "value-max"

    def read(self, states: torch.Tensor, positions: TokenPositions, module: torch.nn.Module) -> torch.Tensor:
        pooled = positions.pool_weights.unsqueeze(-1) > 0
        return states.float().masked_fill(~pooled, -torch.inf).amax(dim=1)


@dataclass(frozen=True)
class SelfOnly(Intervention):
    """Each query attends only to itself on the chosen layers, so u[t] is v[t] for every head."""

    name: ClassVar[str] = "self_only"

    def attention(self, layer, query, key, value, mask, positions, attend):
        length = query.shape[2]
        own = torch.eye(length, dtype=torch.bool, device=query.device).expand(query.shape[0], 1, length, length)
        return attend(query, key, value, own)


@pytest.fixture()
def registered():
    readout = register_readout("value_max", MaxValues())
    register_intervention(SelfOnly)
    yield readout
    READOUTS.pop("value_max")
    INTERVENTIONS.pop("self_only")


def _values_of(model, layer: int, run) -> torch.Tensor:
    """The output of `v_proj` at `layer` while `run()` runs (a plain torch hook, not vaembed's capture)."""
    seen = {}
    handle = model.layers[layer].self_attn.v_proj.register_forward_hook(lambda m, a, out: seen.update(v=out.detach()))
    try:
        run()
    finally:
        handle.remove()
    return seen["v"]


def test_a_registered_readout_runs_by_name_and_reads_what_it_defines(tiny_llama, registered):
    model, tokenizer = tiny_llama
    assert get_readout("value_max") is registered and registered.name == "value_max"
    embedder = Embedder(model, tokenizer, Recipe(PROMPTS["none"], "value_max", [LAYER]))
    assert embedder.dimension == model.config.num_key_value_heads * model.config.head_dim
    for text in TEXTS:
        got = {}
        values = _values_of(model, LAYER, lambda t=text, out=got: out.update(v=embedder.encode(t, normalize=False)))[0]
        special = tokenizer(text, return_special_tokens_mask=True)["special_tokens_mask"]
        expected = values[[i for i, s in enumerate(special) if not s]].max(dim=0).values.numpy()
        np.testing.assert_allclose(got["v"], expected, atol=1e-5)
    mean = embedder.with_recipe(Recipe(PROMPTS["none"], "value_mean", [LAYER])).encode(TEXTS[0], normalize=False)
    assert np.abs(mean - embedder.encode(TEXTS[0], normalize=False)).max() > 1e-3  # max is not the mean


def test_a_new_intervention_changes_the_pass_as_it_defines(tiny_llama, registered):
    model, tokenizer = tiny_llama
    assert INTERVENTIONS["self_only"] is SelfOnly
    recipe = Recipe(PROMPTS["none"], WeightedValues("mean"), [LAYER], SelfOnly(layers=[LAYER]))
    embedder = Embedder(model, tokenizer, recipe, padding_side="left")
    assert embedder.plan.recipe.intervention == SelfOnly(layers=(LAYER,))
    weighted = embedder.encode(TEXTS, normalize=False, batch_size=3)
    values = embedder.with_recipe(Recipe(PROMPTS["none"], ValueVectors("mean"), [LAYER])).encode(TEXTS, normalize=False)
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    per_group = values.reshape(len(TEXTS), kv_heads, -1)
    expected = np.stack([per_group[:, h // (heads // kv_heads)] for h in range(heads)], axis=1).reshape(len(TEXTS), -1)
    np.testing.assert_allclose(weighted, expected, atol=1e-5)  # u[t] = v[g(h)][t]: the intervention ran
    plain = embedder.with_recipe(Recipe(PROMPTS["none"], WeightedValues("mean"), [LAYER])).encode(
        TEXTS, normalize=False
    )
    assert np.abs(plain - weighted).max() > 1e-3  # and it changed the pass
    one_by_one = np.stack([embedder.encode(text, normalize=False) for text in TEXTS])
    np.testing.assert_allclose(one_by_one, weighted, atol=1e-5)  # batch and padding invariant


def test_recipe_parts_reject_wrong_types():
    with pytest.raises(TypeError, match="base class of readouts"):
        from vaembed import Readout

        Readout("value", "mean")
    with pytest.raises(ValueError, match="Unknown readout 'nope'"):
        Recipe(PROMPTS["none"], "nope")
    with pytest.raises(TypeError, match="intervention must be an Intervention"):
        Recipe(PROMPTS["none"], "value_mean", intervention="kv")
    with pytest.raises(ValueError, match="already registered"):
        register_readout("value_mean", MaxValues())
