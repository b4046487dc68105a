"""VAEmbedding on a tiny random model: the engine's outputs, serialisation, sharing, safety."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.embeddings.vaembed import VAEmbedding
from pydantic import ValidationError

from vaembed import Embedder
from vaembed.models.shared import loaded_count
from vaembed.testing import tiny_model_folder

TEXTS = ["the fox sleeps", "rivers run\nto the sea", "numbers 0123", "  spaced  "]


@pytest.fixture()
def embedding() -> VAEmbedding:
    return VAEmbedding(
        model_name=str(tiny_model_folder()),
        recipe="kv",
        query_instruction="Represent this question: ",
        text_instruction="Passage <{text}>",
        embed_batch_size=3,
    )


def test_outputs_are_the_engines_with_each_roles_instruction(embedding):
    engine = embedding.embedder
    texts = embedding.get_text_embedding_batch(TEXTS)
    # batches of 3 here, one batch in the engine: equal up to float noise (the batch-invariance tolerance)
    np.testing.assert_allclose(np.array(texts), engine.encode(TEXTS, prompt="Passage <{text}>"), atol=1e-6)
    assert np.allclose(embedding.get_text_embedding(TEXTS[1]), texts[1], atol=1e-6)  # batch invariant
    query = embedding.get_query_embedding(TEXTS[0])
    expected = engine.encode_query(TEXTS[0], prompt="Represent this question: ")  # a prefix, verbatim
    np.testing.assert_allclose(np.array(query), expected[0] if np.ndim(expected) == 2 else expected, atol=1e-6)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)


def test_no_hidden_text_changes(embedding):
    newline, space, padded, bare = embedding.get_text_embedding_batch(
        ["rivers run\nto the sea", "rivers run to the sea", " spaced ", "spaced"]
    )
    assert not np.allclose(newline, space, atol=1e-5)
    assert not np.allclose(padded, bare, atol=1e-5)


def test_dict_round_trip_rebuilds_without_the_model_object(embedding):
    data = embedding.to_dict()
    assert data["class_name"] == "VAEmbedding"
    assert not any(isinstance(value, Embedder) for value in data.values())
    rebuilt = VAEmbedding.from_dict(data)
    assert rebuilt.embedder.model is embedding.embedder.model
    assert rebuilt.get_query_embedding("a fox") == embedding.get_query_embedding("a fox")
    assert VAEmbedding.from_json(embedding.to_json()).get_text_embedding("x") == embedding.get_text_embedding("x")


def test_same_options_share_one_loaded_model(embedding):
    before = loaded_count()
    other = VAEmbedding(model_name=str(tiny_model_folder()), recipe="hs-mean")
    assert other.embedder.model is embedding.embedder.model
    assert loaded_count() == before


def test_an_injected_engine_is_used_and_described():
    engine = Embedder.from_pretrained(tiny_model_folder(), "hs-mean")
    wrapped = VAEmbedding(embedder=engine, embed_batch_size=2)
    assert wrapped.embedder is engine and wrapped.recipe == "hs-mean"
    assert wrapped.model_name == engine.name and wrapped.layers == [engine.num_layers - 1]
    assert wrapped.get_text_embedding("x") == engine.encode("x").tolist()
    with pytest.raises(ValueError, match=r"Pass either a ready embedder or the options \['layers'\]"):
        VAEmbedding(embedder=engine, layers=[1])


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"colour": "red"}, "colour\n  Extra inputs are not permitted"),
        ({"embed_batch_size": 0}, "embed_batch_size\n  Input should be greater than 0"),
        ({"long_text": "cut"}, "long_text\n  Input should be 'truncate', 'chunk' or 'error'"),
    ],
)
def test_bad_options_are_named(options, fragment):
    with pytest.raises(ValidationError) as error:
        VAEmbedding(model_name=str(tiny_model_folder()), **options)
    assert fragment in str(error.value)


def test_bad_texts_are_named_and_harmless(embedding):
    before = embedding.get_text_embedding_batch(TEXTS)
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, not int"):
        embedding.get_text_embedding_batch(["ok", 3])
    with pytest.raises(TypeError, match="A query must be a str, not NoneType"):
        embedding.get_query_embedding(None)
    assert embedding.get_text_embedding_batch(TEXTS) == before


async def test_async_methods_equal_sync_ones_under_concurrency(embedding):
    queries = [f"question {i}: " + "the fox " * (i % 5) for i in range(32)]
    sequential = [embedding.get_query_embedding(q) for q in queries]
    assert await asyncio.gather(*(embedding.aget_query_embedding(q) for q in queries)) == sequential
    assert await embedding.aget_text_embedding(TEXTS[0]) == embedding.get_text_embedding(TEXTS[0])
    assert await embedding.aget_text_embedding_batch(TEXTS) == embedding.get_text_embedding_batch(TEXTS)
