"""Several readouts of one forward pass equal the readouts of separate passes."""

from __future__ import annotations

import pytest
import torch

from vaembed import Embedder
from vaembed.engine.forward_pass import PassPlan
from vaembed.recipes import get_recipe

TEXTS = [
    "Value vectors carry what a token offers to others.",
    "A short one.",
    "Rerouting the final key lets every token see a summary of the whole input text.",
]


@pytest.fixture(scope="module")
def llama_embedder(tiny_llama):
    model, tokenizer = tiny_llama
    torch.set_num_threads(1)
    return Embedder(model, tokenizer, "hs-mean", layers="final")


def plan(embedder: Embedder, recipe: str, layers, *, keep: bool = False, early_exit: bool = True) -> PassPlan:
    resolved = get_recipe(recipe).with_layers(layers).resolve(embedder.num_layers)
    return PassPlan(resolved, embedder.num_layers, keep_layers=keep, early_exit=early_exit)


def separate_and_shared(embedder: Embedder, plans: list[PassPlan], recipe: str):
    sequences, _ = embedder.with_recipe(recipe, layers="final").tokenize(TEXTS)
    alone = [embedder.run_pass(sequences, p) for p in plans]
    passes_before = embedder.forward_passes
    shared = embedder.run_passes(sequences, plans)
    assert embedder.forward_passes == passes_before + 1
    return alone, shared


def test_plain_pass_readouts_match_their_own_passes(llama_embedder):
    count = llama_embedder.num_layers
    plans = [
        plan(llama_embedder, "hs-mean", "final"),
        plan(llama_embedder, "hs-last", "final"),
        plan(llama_embedder, "va", list(range(count)), keep=True),
        plan(llama_embedder, "wva", [0, 1], keep=True),  # stops early on its own
        plan(llama_embedder, "hs-mean", list(range(count)), keep=True),
    ]
    alone, shared = separate_and_shared(llama_embedder, plans, "hs-mean")
    for own, joint in zip(alone, shared, strict=True):
        torch.testing.assert_close(joint.result(), own.result(), atol=0, rtol=0)
        assert joint.per_layer.keys() == own.per_layer.keys()
        for layer, vectors in own.per_layer.items():
            torch.testing.assert_close(joint.per_layer[layer], vectors, atol=0, rtol=0)
    # Different readouts really differ, so the comparison above could fail.
    assert not torch.allclose(shared[0].result(), shared[1].result())


def test_early_exit_happens_only_when_every_plan_is_done(llama_embedder):
    early = plan(llama_embedder, "va", [0])
    full = plan(llama_embedder, "hs-mean", "final")
    alone, shared = separate_and_shared(llama_embedder, [early, full], "hs-mean")
    torch.testing.assert_close(shared[1].result(), alone[1].result(), atol=0, rtol=0)
    torch.testing.assert_close(shared[0].result(), alone[0].result(), atol=0, rtol=0)


def test_rerouted_pass_is_shared_by_its_readouts(llama_embedder):
    kv = get_recipe("kv").with_layers([1]).resolve(llama_embedder.num_layers)
    hybrid = PassPlan(kv, llama_embedder.num_layers)
    values = PassPlan(kv.with_readout(get_recipe("va").readout, (0, 1)), llama_embedder.num_layers)
    alone, shared = separate_and_shared(llama_embedder, [hybrid, values], "kv")
    for own, joint in zip(alone, shared, strict=True):
        torch.testing.assert_close(joint.result(), own.result(), atol=0, rtol=0)


def test_plans_that_change_the_pass_differently_are_refused(llama_embedder):
    sequences, _ = llama_embedder.tokenize(TEXTS)
    plain = plan(llama_embedder, "hs-mean", "final")
    rerouted = PassPlan(get_recipe("kv").with_layers([1]).resolve(llama_embedder.num_layers), llama_embedder.num_layers)
    with pytest.raises(ValueError, match=r"plans\[1\].*prompt, intervention"):
        llama_embedder.run_passes(sequences, [plain, rerouted])
    with pytest.raises(ValueError, match="at least one"):
        llama_embedder.run_passes(sequences, [])
