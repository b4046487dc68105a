"""The mteb encoder adapter, run through mteb's own evaluation on its offline mock tasks."""

from __future__ import annotations

import math

import mteb
import numpy as np
import pytest
import torch
from mteb.mocks.mock_tasks.classification import MockClassificationTask
from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
from mteb.mocks.mock_tasks.sts import MockSTSTask
from mteb.types import PromptType

from vaembed import Embedder
from vaembed.connectors.mteb import MTEBEncoder

TEXTS = ["How do I sort a list?", "Lists have a sort method.", "Tuples are immutable sequences."]


@pytest.fixture(scope="module")
def encoder(tiny_model_folder):
    torch.set_num_threads(1)
    return MTEBEncoder(Embedder.from_pretrained(str(tiny_model_folder), recipe="kv", layers=[1]))


def batches(texts, size=2):
    return [{"text": texts[i : i + size]} for i in range(0, len(texts), size)]


def test_mteb_evaluate_scores_mock_tasks(encoder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tasks = [MockRetrievalTask(), MockSTSTask(), MockClassificationTask()]
    result = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False)
    scores = {r.task_name: r.get_score() for r in result.task_results}
    assert set(scores) == {"MockRetrievalTask", "MockSTSTask", "MockClassificationTask"}
    for value in scores.values():
        assert math.isfinite(value) and -1.0 <= value <= 1.0
    assert list(tmp_path.iterdir()) == []  # nothing written with cache=None


def test_prompt_type_picks_the_recipes_query_or_document_template(encoder):
    metadata = MockRetrievalTask().metadata
    as_query = encoder.encode(
        batches(TEXTS), task_metadata=metadata, hf_split="test", hf_subset="default", prompt_type=PromptType.query
    )
    as_document = encoder.encode(
        batches(TEXTS), task_metadata=metadata, hf_split="test", hf_subset="default", prompt_type=PromptType.document
    )
    unspecified = encoder.encode(batches(TEXTS), task_metadata=metadata, hf_split="test", hf_subset="default")
    np.testing.assert_allclose(as_query, encoder.embedder.encode(TEXTS, role="query"), atol=1e-5)
    np.testing.assert_allclose(as_document, encoder.embedder.encode(TEXTS, role="document"), atol=1e-5)
    np.testing.assert_allclose(unspecified, as_document, atol=1e-6)
    assert np.abs(as_query - as_document).max() > 1e-3  # kv's query and document prompts differ


def test_instructions_follow_mtebs_priority(encoder):
    task = MockRetrievalTask().metadata
    prompted = MTEBEncoder(
        encoder.embedder,
        prompts={"query": "Q: ", f"{task.type}-query": "T: ", f"{task.name}-document": "D: ", task.name: "N: "},
    )
    assert prompted.instruction(task.name, task.type, "document") == "D: "
    assert prompted.instruction(task.name, task.type, "query") == "N: "
    assert prompted.instruction("Other", task.type, "query") == "T: "
    assert prompted.instruction("Other", "OtherType", "query") == "Q: "
    assert prompted.instruction("Other", "OtherType", "document") is None
    got = prompted.encode(
        batches(TEXTS), task_metadata=task, hf_split="test", hf_subset="default", prompt_type=PromptType.document
    )
    np.testing.assert_allclose(got, encoder.embedder.encode(TEXTS, prompt="D: "), atol=1e-5)
    assert prompted.mteb_model_meta.use_instructions


def test_meta_and_similarity(encoder):
    meta = encoder.mteb_model_meta
    assert meta.name.startswith("vaembed/") and meta.name.endswith("-kv")
    assert meta.embed_dim == encoder.embedder.dimension
    assert meta.similarity_fn_name == "cosine"
    a, b = np.random.default_rng(0).normal(size=(2, 3, 5))
    expected = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(encoder.similarity(a, b).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(encoder.similarity_pairwise(a, b).numpy(), np.diag(expected), atol=1e-6)


def test_bad_inputs_are_named(encoder):
    metadata = MockSTSTask().metadata
    with pytest.raises(ValueError, match=r"text only; batch 0 holds \['image'\]"):
        encoder.encode([{"image": [1]}], task_metadata=metadata, hf_split="test", hf_subset="default")
    with pytest.raises(ValueError, match="batch 1 holds a NoneType"):
        encoder.encode([{"text": ["ok"]}, {"text": [None]}], task_metadata=metadata, hf_split="t", hf_subset="d")
    with pytest.raises(TypeError, match="vaembed Embedder"):
        MTEBEncoder("smollm2-135m")
    with pytest.raises(TypeError, match="prompts must map str to str"):
        MTEBEncoder(encoder.embedder, prompts={"query": 3})
