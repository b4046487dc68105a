"""The lexical readout (`Embedder.encode_sparse`): PromptReps' weighting, recomputed by hand on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vaembed import Embedder
from vaembed.lexical import lm_head_weight
from vaembed.testing import build_model

TEXTS = ["the cat sat on the mat", "interest rates rose again", "volcanoes erupt lava and ash"]


@pytest.fixture(scope="module")
def embedder(tiny_llama):
    model, tokenizer = tiny_llama
    return Embedder(model, tokenizer, recipe="hs-mean", postprocess="none")


def test_weights_are_log1p_relu_logits_of_the_texts_own_tokens(embedder):
    top_k = 4
    sparse = embedder.encode_sparse(TEXTS, top_k=top_k)
    assert sparse.shape == (len(TEXTS), embedder.model.config.vocab_size) and sparse.dtype == np.float32
    reader = embedder.with_recipe("prompteol", postprocess="none")
    hidden = torch.as_tensor(reader.encode(TEXTS, normalize=False))
    logits = hidden @ embedder.model.get_input_embeddings().weight.detach().T
    for row, text in enumerate(TEXTS):
        ids = sorted(set(embedder.tokenizer(text, add_special_tokens=False)["input_ids"]))
        expected = torch.log1p(torch.relu(logits[row, ids])).numpy()
        kept = sparse[row].toarray()[0]
        assert set(np.flatnonzero(kept)) <= set(ids)  # only the text's own vocabulary
        chosen = kept[ids]
        assert np.count_nonzero(chosen) == min(top_k, int((expected > 0).sum()))
        np.testing.assert_allclose(chosen[chosen > 0], expected[chosen > 0], rtol=1e-4, atol=1e-5)
        assert chosen[chosen > 0].min() >= expected[chosen == 0].max(initial=0.0) - 1e-6  # the top ones are kept
    assert sparse.nnz > 0


def test_one_string_is_one_row_and_the_embedder_is_left_as_it_was(embedder):
    before = embedder.encode(TEXTS[:2])
    one = embedder.encode_sparse(TEXTS[0])
    assert one.shape[0] == 1
    np.testing.assert_allclose(one.toarray(), embedder.encode_sparse(TEXTS).toarray()[:1], atol=1e-5)
    assert embedder.recipe.name == "hs-mean"
    np.testing.assert_array_equal(embedder.encode(TEXTS[:2]), before)
    assert embedder.encode_sparse([]).shape == (0, embedder.model.config.vocab_size)


@pytest.mark.parametrize("top_k", [0, -3, 2.5, "8", True])
def test_bad_top_k_is_refused_by_name(embedder, top_k):
    with pytest.raises(ValueError, match="top_k"):
        embedder.encode_sparse(TEXTS, top_k=top_k)


def test_a_text_that_is_not_a_string_is_named(embedder):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.encode_sparse(["fine", 3])


def test_an_untied_head_is_read_from_the_model_folder(tmp_path):
    model = build_model("llama", seed=1)
    model.config.tie_word_embeddings = False
    model.config._name_or_path = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="lm_head.weight"):
        lm_head_weight(model)
    head = torch.randn(model.config.vocab_size, model.config.hidden_size)
    save_file({"lm_head.weight": head}, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(lm_head_weight(model), head)
    assert lm_head_weight(model) is lm_head_weight(model)  # read once per model
