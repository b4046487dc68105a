"""Bad input gets a clear error, never NaN, and never harms later calls."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vaembed import PRESET_RECIPES, Embedder

TEXTS = ["alpha beta", "gamma delta epsilon"]


@pytest.fixture()
def embedder(tiny_llama):
    model, tokenizer = tiny_llama
    return Embedder(model, tokenizer, "va")


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [
        (["ok", None], "texts[1] must be str, not NoneType"),
        (["ok", "fine", 3], "texts[2] must be str, not int"),
        ([b"bytes"], "texts[0] must be str, not bytes"),
        ([["nested"]], "texts[0] must be str, not list"),
        (None, "texts must be a str or a list of str, not NoneType"),
        (42, "texts must be a str or a list of str, not int"),
    ],
)
def test_non_str_items_raise_type_error_naming_index_and_type(embedder, texts, fragment):
    with pytest.raises(TypeError) as error:
        embedder.encode(texts)
    assert fragment in str(error.value)


def test_errors_do_not_change_later_results(embedder):
    before = embedder.encode(TEXTS)
    with pytest.raises(TypeError):
        embedder.encode(["fine", None])
    with pytest.raises(ValueError):
        embedder.encode(TEXTS, role="answer")
    assert np.array_equal(embedder.encode(TEXTS), before)


def test_empty_list_gives_zero_rows(embedder):
    out = embedder.encode([])
    assert out.shape == (0, embedder.dimension) and out.dtype == np.float32
    assert embedder.encode([], convert_to_numpy=False).shape == (0, embedder.dimension)


@pytest.mark.parametrize("preset", list(PRESET_RECIPES))
def test_empty_and_whitespace_texts_are_finite(tiny, preset):
    model, tokenizer = tiny
    out = Embedder(model, tokenizer, preset).encode(["", " ", "   \n\t", "real text"])
    assert np.isfinite(out).all()
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_single_string_gives_one_vector_and_tensor_output(embedder):
    vector = embedder.encode("alpha beta")
    assert vector.shape == (embedder.dimension,)
    tensor = embedder.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    assert np.allclose(tensor.numpy()[0], vector, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "fragment"), [({"role": "answer"}, "role"), ({"batch_size": 0}, "batch_size")])
def test_bad_options_are_named(embedder, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        embedder.encode(TEXTS, **kwargs)


def test_nan_from_the_model_raises_and_names_the_texts(tiny_llama):
    model, tokenizer = tiny_llama
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.layers[2].mlp.down_proj.weight[0, 0] = float("nan")
    embedder = Embedder(broken, tokenizer, "hs-mean")
    with pytest.raises(FloatingPointError, match=r"indices \[0, 1\]"):
        embedder.encode(TEXTS)
    healthy = Embedder(model, tokenizer, "hs-mean").encode(TEXTS)
    assert np.isfinite(healthy).all()


def test_query_and_document_use_their_own_templates(tiny_llama):
    model, tokenizer = tiny_llama
    kv = Embedder(model, tokenizer, "kv")
    assert not np.allclose(kv.encode_query(TEXTS), kv.encode_document(TEXTS), atol=1e-4)
    va = kv.with_recipe("va")  # no role-specific template: both roles agree
    assert np.allclose(va.encode_query(TEXTS), va.encode_document(TEXTS), atol=1e-6)


@pytest.mark.parametrize(
    ("texts", "index"),
    [("ok \ud800 x", 0), (["fine", "ok \ud800 x"], 1), (["a", "b", "\udfff"], 2), (["\ud83e"], 0)],
)
def test_lone_surrogates_raise_value_error_naming_index(embedder, texts, index):
    with pytest.raises(ValueError, match=rf"texts\[{index}\] holds a lone surrogate") as error:
        embedder.encode(texts)
    assert not isinstance(error.value, TypeError)


def test_lone_surrogate_in_an_instruction_is_a_value_error(embedder):
    with pytest.raises(ValueError, match="query prompt holds a lone surrogate at character 2"):
        embedder.encode("fine", role="query", prompt="Q:\udc80 ")


@pytest.mark.parametrize("long_text", ["truncate", "chunk", "error"])
def test_nul_control_and_format_characters_embed_like_text(tiny_llama, long_text):
    """NUL, C0/C1 controls, DEL, BOM, bidi and zero-width marks reach the tokenizer as ordinary text."""
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", long_text=long_text, max_length=64)
    texts = ["a\x00b", "\x00", "\x01\x02\x1f\x7f\x85\x9f", "\ufeff\u200b\u200d\u202e\u2066", "\uffff\U0010ffff"]
    out = embedder.encode(texts)
    assert out.shape == (len(texts), embedder.dimension)
    assert np.isfinite(out).all() and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1])  # the NUL did not swallow the text around it
