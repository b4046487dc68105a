"""The default recipe, with its own post-processing, on six notes about unrelated topics.

Raw LLM embeddings share a large common direction, so a few documents can be the
nearest neighbour of every query (hubness); post-processing
(`vaembed.recipes.postprocess`) exists to remove that component. `tests/data/six_notes.json` holds six
one-sentence notes and five paraphrased questions that avoid their notes' key
words; one note (sourdough) answers none and is there to attract wrong hits.
On the real default model, the right note must come first for all five, both
from the engine and from a LlamaIndex `VectorStoreIndex` over `VAEmbedding`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vaembed import DEFAULT_RECIPE

SIX_NOTES = json.loads((Path(__file__).parent / "data" / "six_notes.json").read_text())
NOTES: dict[str, str] = SIX_NOTES["notes"]
QUESTIONS: dict[str, str] = SIX_NOTES["questions"]


def test_the_six_notes_are_six_topics_and_five_questions():
    assert len(NOTES) == 6 and len(QUESTIONS) == 5
    assert set(QUESTIONS.values()) < set(NOTES)  # one note answers no question
    assert len(set(QUESTIONS.values())) == 5


@pytest.fixture(scope="module")
def default_embedder(real_embedder):
    """The default recipe with the default layers and the recipe's own post-processing."""
    return real_embedder.with_recipe(DEFAULT_RECIPE)


@pytest.mark.real_model
def test_default_recipe_ranks_the_right_note_first_for_every_question(default_embedder):
    names = list(NOTES)
    documents = default_embedder.encode_document([NOTES[name] for name in names])
    queries = default_embedder.encode_query(list(QUESTIONS))
    assert np.isfinite(documents).all() and np.isfinite(queries).all()
    best = np.argmax(queries @ documents.T, axis=1)
    found = {question: names[i] for question, i in zip(QUESTIONS, best, strict=True)}
    assert found == QUESTIONS
    assert max(Counter(found.values()).values()) == 1  # no note is the top hit twice


@pytest.mark.real_model
def test_llamaindex_vector_store_index_with_the_default_embedding_finds_every_note(default_embedder):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.embeddings.vaembed import VAEmbedding

    documents = [Document(text=text, doc_id=name) for name, text in NOTES.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=VAEmbedding(embedder=default_embedder))
    retriever = index.as_retriever(similarity_top_k=1)
    found = {question: retriever.retrieve(question)[0].node.ref_doc_id for question in QUESTIONS}
    assert found == QUESTIONS
