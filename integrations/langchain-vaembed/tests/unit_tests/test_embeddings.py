"""VAEmbeddings on a tiny random model: the engine's outputs, options, sharing, safety."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from langchain_vaembed import VAEmbeddings
from pydantic import ValidationError

from vaembed import Embedder
from vaembed.models.shared import loaded_count
from vaembed.testing import tiny_model_folder

DOCUMENTS = ["the fox sleeps", "rivers run\nto the sea", "numbers 0123", "  spaced  "]


@pytest.fixture()
def embeddings() -> VAEmbeddings:
    return VAEmbeddings(
        model=str(tiny_model_folder()), recipe="kv", query_prompt="Find: ", document_prompt="Doc: {text}"
    )


def test_outputs_are_the_engines_with_each_roles_prompt(embeddings):
    engine = embeddings.embedder
    documents = embeddings.embed_documents(DOCUMENTS)
    assert all(type(value) is float for value in documents[0])
    assert np.array_equal(np.array(documents, dtype=np.float32), engine.encode(DOCUMENTS, prompt="Doc: {text}"))
    query = embeddings.embed_query(DOCUMENTS[1])
    assert np.array_equal(np.array(query, dtype=np.float32), engine.encode_query(DOCUMENTS[1], prompt="Find: "))
    assert not np.allclose(query, documents[1], atol=1e-4)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)


def test_no_hidden_text_changes(embeddings):
    newline, space = embeddings.embed_documents(["rivers run\nto the sea", "rivers run to the sea"])
    assert not np.allclose(newline, space, atol=1e-5)
    padded, bare = embeddings.embed_documents(["  spaced  ", "spaced"])
    assert not np.allclose(padded, bare, atol=1e-5)
    assert embeddings.embed_documents([]) == []


def test_long_text_policy_is_the_engines(embeddings):
    strict = VAEmbeddings(model=str(tiny_model_folder()), recipe="kv", max_length=40, long_text="error")
    with pytest.raises(ValueError, match=r"texts\[0\] has \d+ tokens with its prompt, over max_length=40"):
        strict.embed_documents(["the quick brown fox " * 10])
    truncating = VAEmbeddings(model=str(tiny_model_folder()), recipe="kv", max_length=40)
    with pytest.warns(UserWarning, match="1 of 1 texts were truncated to max_length=40"):
        truncating.embed_documents(["the quick brown fox " * 10])


def test_same_options_share_one_loaded_model(embeddings):
    before = loaded_count()
    other = VAEmbeddings(model_name=str(tiny_model_folder()), recipe="hs-mean", batch_size=2)
    assert other.embedder.model is embeddings.embedder.model
    assert loaded_count() == before


def test_dump_round_trip_rebuilds_the_same_embeddings(embeddings):
    dumped = embeddings.model_dump()
    assert "embedder" not in dumped and dumped["query_prompt"] == "Find: "
    rebuilt = VAEmbeddings(**dumped)
    assert rebuilt.embed_query("a fox") == embeddings.embed_query("a fox")
    assert rebuilt.embed_documents(DOCUMENTS) == embeddings.embed_documents(DOCUMENTS)


def test_an_injected_engine_is_used_and_described(tiny_llama_embedder):
    wrapped = VAEmbeddings(embedder=tiny_llama_embedder, query_prompt="Q: ")
    assert wrapped.embedder is tiny_llama_embedder
    assert wrapped.recipe == "hs-mean" and wrapped.layers == [tiny_llama_embedder.num_layers - 1]
    assert wrapped.embed_query("x") == tiny_llama_embedder.encode_query("x", prompt="Q: ").tolist()
    with pytest.raises(ValueError, match=r"Pass either a ready embedder or the options \['recipe'\]"):
        VAEmbeddings(embedder=tiny_llama_embedder, recipe="kv")


@pytest.fixture()
def tiny_llama_embedder() -> Embedder:
    return Embedder.from_pretrained(tiny_model_folder(), "hs-mean")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"colour": "red"}, "colour\n  Extra inputs are not permitted"),
        ({"batch_size": 0}, "batch_size\n  Input should be greater than 0"),
        ({"long_text": "cut"}, "long_text\n  Input should be 'truncate', 'chunk' or 'error'"),
        ({"dtype": "float8"}, "dtype\n  Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
    ],
)
def test_bad_options_are_named(options, fragment):
    with pytest.raises(ValidationError) as error:
        VAEmbeddings(model=str(tiny_model_folder()), **options)
    assert fragment in str(error.value)


def test_unknown_recipe_is_named():
    with pytest.raises(ValueError, match="nonsense"):
        VAEmbeddings(model=str(tiny_model_folder()), recipe="nonsense")


def test_bad_texts_are_named_and_harmless(embeddings):
    before = embeddings.embed_documents(DOCUMENTS)
    with pytest.raises(TypeError, match="use embed_query for a single text"):
        embeddings.embed_documents("one text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, not NoneType"):
        embeddings.embed_documents(["ok", None])
    with pytest.raises(TypeError, match="embed_query takes a str, not list"):
        embeddings.embed_query(["a list"])
    assert embeddings.embed_documents(DOCUMENTS) == before


async def test_concurrent_async_queries_equal_sequential_ones(embeddings):
    queries = [f"query {i}: " + "the fox " * (i % 5) for i in range(32)]
    sequential = [embeddings.embed_query(q) for q in queries]
    assert await asyncio.gather(*(embeddings.aembed_query(q) for q in queries)) == sequential
    pairs = [[q, "x"] for q in queries]
    sequential_pairs = [embeddings.embed_documents(pair) for pair in pairs]
    assert await asyncio.gather(*(embeddings.aembed_documents(pair) for pair in pairs)) == sequential_pairs


async def test_async_calls_do_not_block_the_event_loop(embeddings):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    runner = embeddings.embedder.runner
    original = runner.run_passes
    passes = []

    def slow_passes(*args, **kwargs):
        passes.append(1)
        time.sleep(0.05)  # a forward pass the loop must not wait for
        return original(*args, **kwargs)

    runner.run_passes = slow_passes
    try:
        await embeddings.aembed_documents(DOCUMENTS * 4)
    finally:
        del runner.run_passes
        task.cancel()
    assert passes  # the slow passes really ran
    assert ticks >= 10
