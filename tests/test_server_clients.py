"""Stock OpenAI clients against the server on loopback: LangChain's OpenAIEmbeddings and Chroma's OpenAI function."""

from __future__ import annotations

import numpy as np
import pytest

from vaembed import Embedder
from vaembed.connectors.serving import BackgroundServer, ServerSettings, create_app

NAME = "vaembed-test"
NOTES = [
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "A binary search halves the sorted range at every step.",
    "The Nile flows north into the Mediterranean Sea.",
    "Sourdough bread rises with wild yeast and lactic bacteria.",
    "Interest rates rose after inflation climbed in the spring.",
]


@pytest.fixture(scope="module")
def tiny_server(tiny_model_folder):
    embedder = Embedder.from_pretrained(tiny_model_folder, "va", [1, 2])
    with BackgroundServer(create_app(embedder, ServerSettings(served_model_name=NAME))) as server:
        yield server, embedder


def openai_embeddings(server, **kwargs):
    from langchain_openai import OpenAIEmbeddings

    options = {"model": NAME, "base_url": server.base_url, "api_key": "unused", "check_embedding_ctx_length": False}
    return OpenAIEmbeddings(**(options | kwargs))


def test_langchain_openai_embeddings_get_the_engine_vectors(tiny_server):
    server, embedder = tiny_server
    client = openai_embeddings(server, chunk_size=4)  # several requests per call
    np.testing.assert_allclose(np.array(client.embed_documents(NOTES)), embedder.encode(NOTES), atol=1e-5)
    np.testing.assert_allclose(np.array(client.embed_query(NOTES[2])), embedder.encode(NOTES[2]), atol=1e-5)


async def test_langchain_openai_async_calls_get_the_engine_vectors(tiny_server):
    server, embedder = tiny_server
    client = openai_embeddings(server)
    vectors = await client.aembed_documents(NOTES)
    np.testing.assert_allclose(np.array(vectors), embedder.encode(NOTES), atol=1e-5)


def test_langchain_openai_reports_server_refusals(tiny_server):
    import openai

    server, _ = tiny_server
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        openai_embeddings(server, model="text-embedding-3-small").embed_query("hello")
    with pytest.raises(openai.BadRequestError, match="token array"):
        openai.OpenAI(base_url=server.base_url, api_key="x").embeddings.create(model=NAME, input=[[1, 2, 3]])


def test_openai_client_query_input_type_via_extra_body(tiny_server):
    import openai

    server, embedder = tiny_server
    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    response = client.embeddings.create(model=NAME, input=NOTES[:2], extra_body={"input_type": "query"})
    vectors = np.array([item.embedding for item in response.data])
    np.testing.assert_allclose(vectors, embedder.encode(NOTES[:2], role="query"), atol=1e-5)


def chroma_collection(server, tmp_path, monkeypatch):
    import chromadb
    from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

    monkeypatch.setenv("CHROMA_OPENAI_API_KEY", "unused")
    function = OpenAIEmbeddingFunction(model_name=NAME, api_base=server.base_url)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    return client.create_collection("notes", embedding_function=function, metadata={"hnsw:space": "cosine"})


def test_chroma_openai_embedding_function_stores_the_engine_vectors(tiny_server, tmp_path, monkeypatch):
    server, embedder = tiny_server
    collection = chroma_collection(server, tmp_path, monkeypatch)
    collection.add(ids=[f"n{i}" for i in range(len(NOTES))], documents=NOTES)
    stored = collection.get(ids=["n0", "n3"], include=["embeddings"])
    np.testing.assert_allclose(np.array(stored["embeddings"]), embedder.encode([NOTES[0], NOTES[3]]), atol=1e-5)
    hits = collection.query(query_texts=[NOTES[4]], n_results=1)
    assert hits["ids"] == [["n4"]]


@pytest.mark.real_model
def test_real_model_behind_the_server_answers_questions_through_chroma(real_embedder, tmp_path, monkeypatch):
    embedder = real_embedder.with_recipe("aligned-wva", "fallback")
    with BackgroundServer(create_app(embedder, ServerSettings(served_model_name=NAME))) as server:
        collection = chroma_collection(server, tmp_path, monkeypatch)
        collection.add(ids=[f"n{i}" for i in range(len(NOTES))], documents=NOTES)
        questions = ["Which river runs to the Mediterranean?", "How is bread leavened?", "Where is the Eiffel Tower?"]
        hits = collection.query(query_texts=questions, n_results=1)["ids"]
        assert hits == [["n3"], ["n4"], ["n0"]]
        langchain = openai_embeddings(server)
        np.testing.assert_allclose(np.array(langchain.embed_documents(NOTES)), embedder.encode(NOTES), atol=1e-5)
