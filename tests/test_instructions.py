"""Per-call instructions (`encode(prompt=...)`) nest inside the recipe's own template."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vaembed import PRESET_RECIPES, PROMPTS, Embedder, Prompt

TEXTS = ["the fox sleeps", "numbers 0123 and more"]


def test_template_instruction_goes_inside_every_copy_for_its_role_only():
    echo = PROMPTS["echo"].with_instruction("Find: {text}!", "query")
    assert echo.query == "Query: Find: {text}!\nQuery again: Find: {text}!"
    assert echo.document == PROMPTS["echo"].document
    assert echo.pool_span == "last_text"


def test_prefix_instruction_is_joined_verbatim():
    prompt = PROMPTS["none"].with_instruction("search_query: ", "query")
    assert prompt.query == "search_query: {text}"
    assert prompt.document == "{text}"
    document = PROMPTS["prompteol"].with_instruction("passage:", "document")
    assert document.document == 'This sentence : "passage:{text}" means in one word:"'
    assert document.query == PROMPTS["prompteol"].document  # queries keep the recipe's template


def test_pooling_still_covers_only_the_text(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "hs-mean")
    text_only = dataclasses.replace(PROMPTS["none"], pool_span="text")
    nested = text_only.with_instruction("A long instruction that is not the text: ", "query")
    plain, _ = embedder.text_tokenizer.encode(TEXTS, text_only, "query", "error")
    wrapped, _ = embedder.text_tokenizer.encode(TEXTS, nested, "query", "error")
    for before, after in zip(plain, wrapped, strict=True):
        assert len(after.ids) > len(before.ids)
        assert abs(sum(after.pool_mask) - sum(before.pool_mask)) <= 1  # a merge at the seam at most


def test_encode_with_prompt_equals_a_recipe_with_that_template(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "hs-mean", postprocess="none")  # raw: the prompt alone decides
    custom = dataclasses.replace(PRESET_RECIPES["hs-mean"], prompt=Prompt("search: {text}"), postprocess="none")
    expected = Embedder(model, tokenizer, custom).encode(TEXTS)
    assert np.array_equal(embedder.encode(TEXTS, prompt="search: "), expected)
    assert np.array_equal(embedder.encode_query(TEXTS, prompt="search: {text}"), expected)
    assert not np.allclose(embedder.encode(TEXTS), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("recipe", "prompt", "error", "fragment"),
    [
        ("va", 7, TypeError, "The query prompt must be a str, not int"),
        ("va", "{text} and {text}", ValueError, "holds '{text}' more than once"),
        ("token-prepending", "<PST> {text}", ValueError, "placeholder '<PST>'"),
    ],
)
def test_bad_prompts_are_named_and_harmless(tiny_llama, recipe, prompt, error, fragment):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, recipe)
    before = embedder.encode_query(TEXTS)
    with pytest.raises(error) as raised:
        embedder.encode_query(TEXTS, prompt=prompt)
    assert fragment in str(raised.value)
    assert np.array_equal(embedder.encode_query(TEXTS), before)
