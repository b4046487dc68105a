"""VAEmbeddings on the real default model: retrieval in a vector store, concurrency, one model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_vaembed import VAEmbeddings

from vaembed import DEFAULT_MODEL, DEFAULT_RECIPE
from vaembed.models.shared import loaded_count

pytestmark = pytest.mark.real_model

NOTES = {
    "bees": "Honey bees collect nectar from flowers and turn it into honey inside the hive.",
    "volcano": "A volcano erupts when molten rock, gas and ash escape from beneath the Earth's crust.",
    "bread": "To bake bread, knead flour, water, salt and yeast, let the dough rise, then bake it.",
    "chess": "In chess, each player starts with sixteen pieces and tries to checkmate the opposing king.",
    "tides": "Ocean tides rise and fall twice a day because of the Moon's gravitational pull.",
    "violin": "The violin is a string instrument played with a bow and tuned in perfect fifths.",
    "rust": "Iron rusts when it reacts with oxygen and water, forming reddish iron oxide.",
    "marathon": "A marathon is a long-distance running race of about forty-two kilometres.",
}
QUESTIONS = {
    "How do bees make honey?": "bees",
    "Why does the sea level change during the day?": "tides",
    "What happens when a mountain explodes with lava?": "volcano",
    "Which instrument has four strings and is played with a bow?": "violin",
    "What makes metal turn red and flaky?": "rust",
}


@pytest.fixture(scope="module")
def embeddings() -> VAEmbeddings:
    return VAEmbeddings()


def test_defaults_are_the_default_model_and_recipe(embeddings):
    assert embeddings.model == DEFAULT_MODEL and embeddings.recipe == DEFAULT_RECIPE == "hs-mean"
    recipe = embeddings.embedder.recipe
    assert recipe.name == "hs-mean" and recipe.postprocess == "standardize" and list(embeddings.embedder.layers) == [29]


def test_vector_store_retrieves_the_right_note(embeddings):
    store = InMemoryVectorStore(embedding=embeddings)
    store.add_documents([Document(page_content=text, id=key) for key, text in NOTES.items()])
    hits = {question: store.similarity_search(question, k=1)[0].id for question in QUESTIONS}
    print("\n" + "\n".join(f"  {q!r} -> {hit}" for q, hit in hits.items()))
    right = sum(hits[q] == key for q, key in QUESTIONS.items())
    assert right >= 4, hits


async def test_32_concurrent_queries_equal_sequential_ones(embeddings):
    queries = [f"{question} ({i})" for i in range(8) for question in QUESTIONS][:32]
    sequential = [embeddings.embed_query(q) for q in queries]
    concurrent = await asyncio.gather(*(embeddings.aembed_query(q) for q in queries))
    assert concurrent == sequential
    assert np.isfinite(np.array(concurrent)).all()


def test_two_adapters_with_the_same_options_hold_one_model(embeddings):
    before = loaded_count()
    second = VAEmbeddings(batch_size=8, query_prompt="Question: ")
    assert second.embedder.model is embeddings.embedder.model
    assert loaded_count() == before
