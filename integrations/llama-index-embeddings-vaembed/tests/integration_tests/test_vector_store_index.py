"""VAEmbedding on the real default model inside a LlamaIndex VectorStoreIndex."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.vaembed import VAEmbedding

from vaembed import DEFAULT_MODEL, DEFAULT_RECIPE

pytestmark = pytest.mark.real_model

# Twenty short notes on unrelated subjects and five questions, written for this test.
DATA = json.loads((Path(__file__).parents[1] / "data" / "notes.json").read_text())
NOTES: dict[str, str] = DATA["notes"]
QUESTIONS: dict[str, str] = DATA["questions"]


@pytest.fixture(scope="module")
def embedding() -> VAEmbedding:
    return VAEmbedding()


@pytest.mark.parametrize("recipe", ["va", "aligned-wva", "kv"])
def test_index_retrieves_the_right_note_at_rank_one(recipe):
    embedding = VAEmbedding(recipe=recipe)  # each recipe's default layers and post-processing
    assert embedding.model_name == DEFAULT_MODEL
    documents = [Document(text=text, doc_id=key) for key, text in NOTES.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=embedding)
    retriever = index.as_retriever(similarity_top_k=3)
    top = {question: retriever.retrieve(question)[0].node.ref_doc_id for question in QUESTIONS}
    print(f"\n{recipe}: " + ", ".join(f"{q!r} -> {hit}" for q, hit in top.items()))
    assert sum(top[q] == key for q, key in QUESTIONS.items()) >= 4, top


async def test_async_retrieval_and_concurrent_queries(embedding):
    assert embedding.model_name == DEFAULT_MODEL and embedding.recipe == DEFAULT_RECIPE == "hs-mean"
    questions = list(QUESTIONS) * 4
    sequential = [embedding.get_query_embedding(q) for q in questions]
    concurrent = await asyncio.gather(*(embedding.aget_query_embedding(q) for q in questions))
    assert concurrent == sequential and np.isfinite(np.array(concurrent)).all()
    index = VectorStoreIndex.from_documents(
        [Document(text=text, doc_id=key) for key, text in NOTES.items()], embed_model=embedding, use_async=True
    )
    nodes = await index.as_retriever(similarity_top_k=1).aretrieve("How do bees make honey?")
    assert nodes[0].node.ref_doc_id == "bees"
