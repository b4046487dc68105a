"""VAEmbedding on the real default model inside a LlamaIndex VectorStoreIndex."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.vaembed import VAEmbedding

from vaembed import DEFAULT_MODEL

pytestmark = pytest.mark.real_model

# Twenty short notes on unrelated subjects, written for this test.
NOTES = {
    "bees": "Honey bees gather nectar from flowers and store it as honey in wax combs.",
    "volcano": "Volcanoes erupt when molten rock and gas force their way up through the crust.",
    "bread": "Bread dough rises because yeast ferments sugar and releases carbon dioxide.",
    "chess": "A chess game ends in checkmate when the king is attacked and cannot escape.",
    "tides": "Tides rise and fall twice a day, pulled mainly by the gravity of the Moon.",
    "violin": "The violin has four strings and is played by drawing a bow across them.",
    "rust": "Iron rusts when oxygen and water react with it to form reddish iron oxide.",
    "marathon": "A marathon is a running race of a little over forty-two kilometres.",
    "photosynthesis": "Plants use sunlight, water and carbon dioxide to make sugar and oxygen.",
    "vaccines": "Vaccines train the immune system to recognise a germ before an infection.",
    "glaciers": "Glaciers are slow rivers of ice that carve valleys as they move downhill.",
    "coffee": "Coffee beans are the roasted seeds of a berry grown on tropical shrubs.",
    "lighthouse": "A lighthouse warns ships at night with a bright rotating lamp on the coast.",
    "penguins": "Penguins are flightless birds that swim fast and live mostly in the south.",
    "taxes": "Income tax is a share of what people earn that is paid to the government.",
    "earthquake": "Earthquakes happen when rocks slip suddenly along a fault deep underground.",
    "origami": "Origami is the art of folding a single square of paper into shapes.",
    "batteries": "A battery stores chemical energy and releases it as electric current.",
    "sleep": "Adults need about seven to nine hours of sleep each night to stay healthy.",
    "compost": "Compost forms when microbes break down food scraps and leaves into soil.",
}
QUESTIONS = {
    "How do bees make honey?": "bees",
    "Why does the sea go up and down every day?": "tides",
    "What makes dough get bigger before baking?": "bread",
    "How do green plants turn light into food?": "photosynthesis",
    "What causes the ground to shake?": "earthquake",
}


@pytest.fixture(scope="module")
def embedding() -> VAEmbedding:
    return VAEmbedding()


# On SmolLM2-135M the ID-calibrated window (about a third of the depth) retrieves
# worse than the second half of the layers; these recipes read the second half.
@pytest.mark.parametrize("recipe", ["va", "aligned-wva", "kv"])
def test_index_retrieves_the_right_note_at_rank_one(recipe):
    embedding = VAEmbedding(recipe=recipe, layers="fallback")
    assert embedding.model_name == DEFAULT_MODEL
    documents = [Document(text=text, doc_id=key) for key, text in NOTES.items()]
    index = VectorStoreIndex.from_documents(documents, embed_model=embedding)
    retriever = index.as_retriever(similarity_top_k=3)
    top = {question: retriever.retrieve(question)[0].node.ref_doc_id for question in QUESTIONS}
    print(f"\n{recipe}: " + ", ".join(f"{q!r} -> {hit}" for q, hit in top.items()))
    assert sum(top[q] == key for q, key in QUESTIONS.items()) >= 4, top


async def test_async_retrieval_and_concurrent_queries(embedding):
    assert embedding.model_name == DEFAULT_MODEL and embedding.recipe == "va"
    questions = list(QUESTIONS) * 4
    sequential = [embedding.get_query_embedding(q) for q in questions]
    concurrent = await asyncio.gather(*(embedding.aget_query_embedding(q) for q in questions))
    assert concurrent == sequential and np.isfinite(np.array(concurrent)).all()
    index = VectorStoreIndex.from_documents(
        [Document(text=text, doc_id=key) for key, text in NOTES.items()], embed_model=embedding, use_async=True
    )
    nodes = await index.as_retriever(similarity_top_k=1).aretrieve("How do bees make honey?")
    assert nodes[0].node.ref_doc_id == "bees"
