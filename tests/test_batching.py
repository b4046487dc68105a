"""Cost rules: one forward pass per batch, length-sorted batches, progress bar, recipe layers."""

from __future__ import annotations

import numpy as np
import pytest

from vaembed import PRESET_RECIPES, Embedder
from vaembed.engine.batching import plan_batches
from vaembed.recipes import resolve_layers

TEXTS = [f"text number {i} " + "word " * (i % 7) for i in range(10)]


@pytest.mark.parametrize("preset", list(PRESET_RECIPES))
def test_one_forward_pass_per_batch(tiny_llama, preset):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, preset)
    embedder.forward_passes = 0  # a first use of a calibrated preset calibrates (more passes)
    embedder.encode(TEXTS, batch_size=4)
    assert embedder.forward_passes == 3


def test_long_inputs_run_in_smaller_batches():
    lengths = [4000, 3000, 100, 100, 100, 2000, 2000, 10] + [50] * 90
    batches = plan_batches(lengths, batch_size=32, token_budget=4096)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [len(b) for b in batches[:4]] == [1, 1, 2, 32]  # 4000 | 3000 | 2000 x2 | 100 x3 + 50 x29
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 32 and (len(batch) == 1 or len(batch) * longest <= 4096)
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_batches_are_length_sorted_with_dynamic_padding(tiny_llama, monkeypatch):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va")
    widths = []
    original = embedder.text_tokenizer.collate

    def spy(sequences):
        batch = original(sequences)
        widths.append((batch.input_ids.shape[1], [len(s.ids) for s in sequences]))
        return batch

    monkeypatch.setattr(embedder.text_tokenizer, "collate", spy)
    embedder.encode(TEXTS, batch_size=4)
    maxima = [width for width, _ in widths]
    assert maxima == sorted(maxima, reverse=True)
    assert all(width == max(lengths) for width, lengths in widths)  # padded only to the batch's longest


def test_progress_bar_on_request_and_on_long_jobs(tiny_llama, capsys):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va")
    embedder.encode(TEXTS, batch_size=4, show_progress_bar=True)
    assert "Batches" in capsys.readouterr().err
    embedder.encode(TEXTS, batch_size=4)
    assert "Batches" not in capsys.readouterr().err  # 3 batches: quiet by default
    embedder.encode(TEXTS * 4, batch_size=4)
    assert "Batches" in capsys.readouterr().err  # 10 batches: a long job


def test_layers_override_and_specs():
    assert resolve_layers("fallback", 30) == tuple(range(15, 30))
    assert resolve_layers("kv-fallback", 30) == (15, 16, 17)
    assert resolve_layers("early", 30) == tuple(range(8))
    assert resolve_layers([-1, 3, 3], 30) == (3, 29)
    with pytest.raises(ValueError, match="out of range"):
        resolve_layers([30], 30)
    with pytest.raises(ValueError, match="Unknown layer spec"):
        resolve_layers("middle", 30)
    with pytest.raises(TypeError, match="ints"):
        resolve_layers([1.5], 30)


def test_layers_argument_sets_the_calibrated_set(tiny_llama):
    model, tokenizer = tiny_llama
    va = Embedder(model, tokenizer, "va", layers=[1])
    assert va.plan.recipe.layers == (1,)
    kv = Embedder(model, tokenizer, "kv", layers=[2])
    assert kv.plan.recipe.intervention.layers == (2,) and kv.plan.recipe.layers == (3,)
    assert not np.allclose(va.encode("a b c"), va.with_recipe("va", layers=[2]).encode("a b c"))
