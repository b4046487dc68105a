"""The Chroma embedding function: persisted collections reopen with the same settings."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest
from chromadb.utils.embedding_functions import config_to_embedding_function

from vaembed import Embedder
from vaembed.connectors.chroma import VAEmbeddingFunction

TOPICS = ["fox", "ocean", "violin", "bread", "comet", "glacier", "tractor", "orchid", "volcano", "lantern"]
DOCUMENTS = [f"Note {i}: the {TOPICS[i % 10]} and the {TOPICS[(i * 3 + 1) % 10]} ({i})" for i in range(50)]


@pytest.fixture()
def function(tiny_model_folder):
    return VAEmbeddingFunction(str(tiny_model_folder), "kv", query_prompt="Find: ", batch_size=8)


def test_documents_and_queries_use_their_own_prompts(function):
    documents = function(DOCUMENTS[:3])
    queries = function.embed_query(DOCUMENTS[:3])
    engine = function.embedder
    assert np.array_equal(np.stack(documents), engine.encode(DOCUMENTS[:3]))
    assert np.array_equal(np.stack(queries), engine.encode_query(DOCUMENTS[:3], prompt="Find: "))
    assert all(np.isclose(np.linalg.norm(v), 1.0, atol=1e-5) for v in documents)


def test_config_names_concrete_layers_and_rebuilds_the_same_function(function):
    config = function.get_config()
    assert config["layers"] == function.embedder.layers and all(isinstance(i, int) for i in config["layers"])
    assert config["recipe"] == "kv"
    rebuilt = VAEmbeddingFunction.build_from_config(config)
    assert rebuilt.get_config() == config
    assert rebuilt.embedder.model is function.embedder.model  # one loaded model per process
    assert np.array_equal(np.stack(rebuilt(DOCUMENTS[:5])), np.stack(function(DOCUMENTS[:5])))
    via_registry = config_to_embedding_function({"name": "vaembed", "config": config})
    assert isinstance(via_registry, VAEmbeddingFunction)


def reopen_and_compare(folder, function, documents, queries):
    """Add documents, query, close; reopen twice (explicit and automatic rebuild) and compare."""
    client = chromadb.PersistentClient(path=str(folder))
    collection = client.create_collection("notes", embedding_function=function)
    collection.add(ids=[f"doc-{i}" for i in range(len(documents))], documents=documents)
    before = collection.query(query_texts=queries, n_results=3)["ids"]
    config = collection.configuration["embedding_function"].get_config()
    client.close()
    del client, collection

    reopened = chromadb.PersistentClient(path=str(folder))
    explicit = reopened.get_collection("notes", embedding_function=VAEmbeddingFunction.build_from_config(config))
    assert explicit.count() == len(documents)
    assert explicit.query(query_texts=queries, n_results=3)["ids"] == before
    automatic = reopened.get_collection("notes")  # rebuilt by Chroma from the stored config
    assert isinstance(automatic.configuration["embedding_function"], VAEmbeddingFunction)
    assert automatic.query(query_texts=queries, n_results=3)["ids"] == before
    reopened.close()
    return before


def test_persistent_collection_reopens_with_the_same_results(tmp_path, function):
    reopen_and_compare(tmp_path, function, DOCUMENTS, ["the comet and the glacier", "bread from the tractor"])


@pytest.mark.real_model
def test_real_model_collection_reopens_and_finds_the_topic(tmp_path, real_embedder):
    function = VAEmbeddingFunction()  # the default model and recipe, sharing the session's loaded model
    assert function.embedder.model is real_embedder.model
    subjects = ["honey bees", "ocean tides", "volcanoes", "bread baking", "chess openings"]
    documents = [f"Note {i} is about {subjects[i % 5]}." for i in range(50)]
    top = reopen_and_compare(tmp_path, function, documents, ["Which notes are about volcanoes?"])
    assert int(top[0][0].split("-")[1]) % 5 == 2, top  # the best hit is a note about volcanoes


def test_changes_that_would_mix_spaces_are_refused(function):
    old = function.get_config()
    with pytest.raises(ValueError, match=r"Changing \['layers'\]"):
        function.validate_config_update(old, {**old, "layers": [0]})
    function.validate_config_update(old, {**old, "batch_size": 4})  # harmless


@pytest.mark.parametrize(
    ("config", "fragment"),
    [({"model": "x", "colour": "red"}, "Unknown vaembed embedding function options: ['colour']"), ({}, "'model'")],
)
def test_bad_configs_are_named(config, fragment):
    with pytest.raises(ValueError) as error:
        VAEmbeddingFunction.build_from_config(config)
    assert fragment in str(error.value)


def test_a_ready_embedder_excludes_model_options(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "hs-mean")
    assert VAEmbeddingFunction(embedder=embedder).embedder is embedder
    with pytest.raises(ValueError, match=r"not both"):
        VAEmbeddingFunction(recipe="kv", embedder=embedder)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        VAEmbeddingFunction(embedder=embedder, batch_size=0)
    with pytest.raises(TypeError, match="query_prompt must be a str or None, not int"):
        VAEmbeddingFunction(embedder=embedder, query_prompt=3)
