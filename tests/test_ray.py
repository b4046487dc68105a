"""Ray Data batch embedding on a local Ray instance (2 CPUs), checked against one process."""

from __future__ import annotations

import numpy as np
import pytest
import ray

from benchmarks.python_docs import python_doc_passages
from vaembed import Embedder
from vaembed.connectors.ray import embed_dataset, load_into_chroma, read_embeddings, write_embeddings

LAYERS = [1, 2]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def passages():
    ids, texts = python_doc_passages(1000)
    assert len(texts) == 1000
    return ids, texts


@pytest.fixture(scope="module")
def embedded(local_ray, passages, tiny_model_folder):
    ids, texts = passages
    dataset = ray.data.from_items([{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)])
    out = embed_dataset(
        dataset, model=str(tiny_model_folder), recipe="va", layers=LAYERS, concurrency=2, rows_per_batch=100
    )
    return out, out.take_all()


def test_a_thousand_documents_get_single_process_vectors_in_order(embedded, passages, tiny_model_folder):
    _, rows = embedded
    ids, texts = passages
    assert [row["id"] for row in rows] == ids
    assert [row["text"] for row in rows] == texts
    expected = Embedder.from_pretrained(tiny_model_folder, "va", LAYERS).encode(texts, batch_size=32)
    vectors = np.stack([row["embedding"] for row in rows])
    assert vectors.dtype == np.float32 and not np.isnan(vectors).any()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_parquet_holds_ids_and_vectors_and_fills_chroma(embedded, tmp_path):
    import chromadb

    out, rows = embedded
    by_id = {row["id"]: row["embedding"] for row in rows}
    write_embeddings(out.limit(300), tmp_path / "vectors")
    read_ids, read_vectors, texts = [], [], []
    for ids, vectors, others in read_embeddings(tmp_path / "vectors"):
        read_ids += ids
        read_vectors.append(vectors)
        texts += others["text"]
    assert sorted(read_ids) == sorted(row["id"] for row in rows[:300])
    np.testing.assert_array_equal(np.concatenate(read_vectors), np.stack([by_id[i] for i in read_ids]))
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    collection = client.create_collection("docs", embedding_function=None, metadata={"hnsw:space": "cosine"})
    assert load_into_chroma(tmp_path / "vectors", collection, batch_size=128) == 300
    stored = collection.get(ids=read_ids[:5], include=["embeddings", "documents"])
    np.testing.assert_allclose(np.array(stored["embeddings"]), np.stack([by_id[i] for i in read_ids[:5]]), atol=1e-7)
    assert stored["documents"] == texts[:5]
    [[nearest]] = collection.query(query_embeddings=[by_id[read_ids[7]]], n_results=1)["ids"]
    assert nearest == read_ids[7]


RICH = [
    {
        "id": f"n{i}",
        "text": f"Row {i}: the {['fox', 'comet', 'bread', 'violin'][i % 4]} and the river",
        "page": None if i % 5 == 0 else i,
        "tags": [f"t{i % 3}"] * (i % 3),
        "info": {"depth": i, "name": f"x{i}"},
        "source": f"file-{i % 2}.txt",
        "score": i / 4,
    }
    for i in range(24)
]


@pytest.fixture(scope="module")
def queries_embedded(local_ray, tiny_model_folder):
    """Rows with other columns of several types, embedded as queries with a prompt and post-processing."""
    out = embed_dataset(
        ray.data.from_items(RICH),
        model=str(tiny_model_folder),
        recipe="va",
        layers=LAYERS,
        postprocess="center",
        role="query",
        query_prompt="Find notes about: ",
        document_prompt="unused for queries: ",
        rows_per_batch=10,
    )
    return out.materialize()


def test_other_columns_are_kept_exactly(queries_embedded):
    rows = queries_embedded.take_all()
    assert [{key: value for key, value in row.items() if key != "embedding"} for row in rows] == RICH
    assert all(isinstance(row["embedding"], np.ndarray) for row in rows)


def test_role_prompt_and_postprocess_give_encodes_vectors(queries_embedded, tiny_model_folder):
    vectors = np.stack([row["embedding"] for row in queries_embedded.take_all()])
    engine = Embedder.from_pretrained(tiny_model_folder, "va", LAYERS, postprocess="center")
    texts = [row["text"] for row in RICH]
    expected = engine.encode(texts, role="query", prompt="Find notes about: ")
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    plain = Embedder.from_pretrained(tiny_model_folder, "va", LAYERS).encode(texts, role="query")
    assert not np.allclose(vectors, plain, atol=1e-3)  # the prompt and post-processing took effect


def test_metadata_columns_go_into_chroma(queries_embedded, tmp_path):
    import chromadb

    write_embeddings(queries_embedded, tmp_path / "vectors")
    collection = chromadb.EphemeralClient().create_collection("meta-all", embedding_function=None)
    assert load_into_chroma(tmp_path / "vectors", collection, batch_size=7) == len(RICH)
    stored = collection.get(ids=[row["id"] for row in RICH], include=["metadatas", "documents"])
    by_id = dict(zip(stored["ids"], stored["metadatas"], strict=True))
    for row in RICH:  # every scalar or list column; nulls and empty lists left out; the struct column is not stored
        wanted = {key: row[key] for key in ("page", "tags", "source", "score") if row[key] not in (None, [])}
        assert by_id[row["id"]] == wanted
    assert sorted(stored["documents"]) == sorted(row["text"] for row in RICH)
    chosen = chromadb.EphemeralClient().create_collection("meta-chosen", embedding_function=None)
    load_into_chroma(tmp_path / "vectors", chosen, metadata_columns=["source"])
    assert chosen.get(ids=["n3"])["metadatas"] == [{"source": "file-1.txt"}]
    with pytest.raises(ValueError, match="metadata column 'info' holds struct"):
        load_into_chroma(tmp_path / "vectors", chosen, metadata_columns=["info"])
    with pytest.raises(KeyError, match="no metadata column 'colour'"):
        load_into_chroma(tmp_path / "vectors", chosen, metadata_columns=["colour"])


def test_a_bad_role_or_prompt_is_named(local_ray):
    dataset = ray.data.from_items([{"text": "a"}])
    with pytest.raises(ValueError, match="role must be one of \\['query', 'document'\\], not 'answer'"):
        embed_dataset(dataset, role="answer")
    with pytest.raises(TypeError, match="query_prompt must be a str or None, not int"):
        embed_dataset(dataset, query_prompt=3)


def test_a_missing_text_column_is_named(local_ray, tiny_model_folder):
    dataset = ray.data.from_items([{"id": "a", "body": "text"}])
    out = embed_dataset(dataset, model=str(tiny_model_folder), recipe="va", layers=LAYERS)
    with pytest.raises(Exception, match="no column 'text'"):
        out.take_all()


def test_unknown_options_are_named(local_ray):
    with pytest.raises(ValueError, match="unknown options \\['colour'\\]"):
        embed_dataset(ray.data.from_items([{"text": "a"}]), colour="red")


@pytest.mark.real_model
def test_real_model_on_ray_equals_one_process(local_ray, passages, real_embedder):
    ids, texts = passages[0][:96], passages[1][:96]
    dataset = ray.data.from_items([{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)])
    rows = embed_dataset(dataset, recipe="aligned-wva", layers="fallback", rows_per_batch=48).take_all()
    assert [row["id"] for row in rows] == ids
    expected = real_embedder.with_recipe("aligned-wva", "fallback").encode(texts)
    np.testing.assert_allclose(np.stack([row["embedding"] for row in rows]), expected, atol=1e-5)
