"""The LangChain and LlamaIndex adapters, the Chroma function and `Embedder` give one vector for one setting."""

from __future__ import annotations

import numpy as np
import pytest

from vaembed import Embedder
from vaembed.connectors.chroma import VAEmbeddingFunction

TEXTS = ["Foxes eat berries and mice.", "The river runs to the sea."]


@pytest.mark.parametrize(
    ("instruction", "postprocess"), [("Query: ", "none"), ("Question <{text}> answer", "center"), ("Q:", "none")]
)
def test_every_surface_gives_the_same_vectors(tiny_model_folder, instruction, postprocess):
    langchain_vaembed = pytest.importorskip("langchain_vaembed")
    llama = pytest.importorskip("llama_index.embeddings.vaembed")
    model = str(tiny_model_folder)
    engine = Embedder.from_pretrained(model, "va", postprocess=postprocess)
    queries = engine.encode(TEXTS, role="query", prompt=instruction)
    documents = engine.encode(TEXTS, role="document", prompt=instruction)
    assert not np.allclose(queries, engine.encode(TEXTS, role="query"))  # the instruction matters

    options = dict(model=model, recipe="va", postprocess=postprocess)
    lc = langchain_vaembed.VAEmbeddings(**options, query_prompt=instruction, document_prompt=instruction)
    li = llama.VAEmbedding(
        model_name=model,
        recipe="va",
        postprocess=postprocess,
        query_instruction=instruction,
        text_instruction=instruction,
    )
    chroma = VAEmbeddingFunction(**options, query_prompt=instruction, document_prompt=instruction)
    for got in (lc.embed_documents(TEXTS), li.get_text_embedding_batch(TEXTS), chroma(TEXTS)):
        np.testing.assert_allclose(np.array(got), documents, atol=1e-6)
    for got in (
        [lc.embed_query(t) for t in TEXTS],
        [li.get_query_embedding(t) for t in TEXTS],
        chroma.embed_query(TEXTS),
    ):
        np.testing.assert_allclose(np.array(got), queries, atol=1e-6)
