"""A Chroma collection's stored function config reopens on another machine: no device, no cache path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import chromadb
import numpy as np
import pytest

from vaembed.cache import CACHE_ENV
from vaembed.connectors.chroma import VAEmbeddingFunction
from vaembed.connectors.portable import local_model, portable_model, portable_model_kwargs

DOCUMENTS = [f"Note {i}: the {w} and the river ({i})" for i, w in enumerate(["fox", "comet", "bread", "violin"] * 5)]
QUERIES = ["the comet", "bread and a river"]

# argv: Chroma folder, queries as JSON. Runs with another $VAEMBED_CACHE; Chroma rebuilds the function itself.
CHILD = r"""
import json, sys
import chromadb
import vaembed.connectors.chroma  # registers the "vaembed" embedding function
collection = chromadb.PersistentClient(path=sys.argv[1]).get_collection("notes")
function = collection.configuration["embedding_function"]
queries = json.loads(sys.argv[2])
print(json.dumps({
    "config": function.get_config(),
    "vectors": [list(map(float, v)) for v in function.embed_query(queries)],
    "ids": collection.query(query_texts=queries, n_results=3)["ids"],
}))
"""


def test_portable_model_rules(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    (cache / "models" / "smollm2-135m").mkdir(parents=True)
    (cache / "models" / "tiny-0123abcd").mkdir()
    assert portable_model(str(cache / "models" / "smollm2-135m")) == ("smollm2-135m", None)
    assert portable_model("smollm2-135m") == ("smollm2-135m", None)
    assert portable_model("org/model") == ("org/model", None)
    snapshot = tmp_path / "hf" / "hub" / "models--org--some-model" / "snapshots" / "abc123"
    assert portable_model(str(snapshot)) == ("org/some-model", "abc123")
    reference, _ = portable_model(str(cache / "models" / "tiny-0123abcd"))
    assert reference == "vaembed-cache:models/tiny-0123abcd"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert local_model(reference) == str(tmp_path / "elsewhere" / "models" / "tiny-0123abcd")
    assert portable_model(str(tmp_path / "my-model")) == (str(tmp_path / "my-model"), None)  # any other folder
    kwargs = {"revision": "v2", "device_map": "auto", "token": "t", "cache_dir": "/x", "attn_implementation": "eager"}
    assert portable_model_kwargs(kwargs, "abc") == {"revision": "v2", "attn_implementation": "eager"}
    assert portable_model_kwargs({}, "abc") == {"revision": "abc"}


def test_the_config_holds_no_device_and_no_cache_path(tmp_path, monkeypatch, tiny_model_folder):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    shutil.copytree(tiny_model_folder, cache / "models" / "smollm2-135m")
    function = VAEmbeddingFunction(
        str(cache / "models" / "smollm2-135m"), "va", [1, 2], device="cpu", model_kwargs={"cache_dir": str(cache)}
    )
    config = function.get_config()
    assert "device" not in config
    assert str(cache) not in json.dumps(config) and str(cache.resolve()) not in json.dumps(config)
    assert config["model"] == "smollm2-135m" and config["model_kwargs"] == {}
    rebuilt = VAEmbeddingFunction.build_from_config({**config, "device": "cuda:7"})  # an older config's device
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(np.stack(rebuilt(DOCUMENTS[:3])), np.stack(function(DOCUMENTS[:3])))


def test_a_collection_reopens_in_another_process_with_another_cache(tmp_path, monkeypatch, tiny_model_folder):
    first, second = tmp_path / "cache-a", tmp_path / "cache-b"
    for cache in (first, second):  # each machine's cache holds the converted preset
        shutil.copytree(tiny_model_folder, cache / "models" / "smollm2-135m")
    monkeypatch.setenv(CACHE_ENV, str(first))
    function = VAEmbeddingFunction(
        str(first / "models" / "smollm2-135m"),
        "va",
        [1, 2],
        postprocess="center",
        query_prompt="Find notes about: ",
        max_length=64,
        long_text="chunk",
        device="cpu",
    )
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    collection = client.create_collection("notes", embedding_function=function)
    collection.add(ids=[f"doc-{i}" for i in range(len(DOCUMENTS))], documents=DOCUMENTS)
    expected_ids = collection.query(query_texts=QUERIES, n_results=3)["ids"]
    expected = np.stack(function.embed_query(QUERIES))
    client.close()

    env = {**os.environ, CACHE_ENV: str(second), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-c", CHILD, str(tmp_path / "chroma"), json.dumps(QUERIES)]
    child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert child.returncode == 0, child.stderr[-3000:]
    reopened = json.loads(child.stdout.splitlines()[-1])
    config = reopened["config"]
    assert "device" not in config and str(first) not in json.dumps(config) and str(tmp_path) not in json.dumps(config)
    assert (config["model"], config["recipe"], config["layers"]) == ("smollm2-135m", "va", [1, 2])
    assert (config["postprocess"], config["max_length"], config["long_text"]) == ("center", 64, "chunk")
    assert config["query_prompt"] == "Find notes about: "
    np.testing.assert_allclose(np.array(reopened["vectors"]), expected, atol=1e-6)
    assert reopened["ids"] == expected_ids


def test_a_cache_reference_missing_here_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="models/absent"):
        VAEmbeddingFunction.build_from_config({"model": "vaembed-cache:models/absent", "recipe": "va"})
