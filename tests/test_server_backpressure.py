"""Back-pressure and loading on real uvicorn (loopback) over a tiny model whose engine calls can be held."""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial

import httpx
import numpy as np
import pytest

from vaembed import Embedder
from vaembed.connectors.serving import Admission, BackgroundServer, Overloaded, ServerSettings, create_app

NAME = "tiny"


@pytest.fixture()
def held(tiny_model_folder, monkeypatch):
    """(embedder, gate): every engine call waits until `gate` is set."""
    embedder = Embedder.from_pretrained(tiny_model_folder, "va", [1, 2], max_length=128)
    gate = threading.Event()
    original = embedder.embed_sequences

    def slow(*args, **kwargs):
        assert gate.wait(30), "the test never released the engine"
        return original(*args, **kwargs)

    monkeypatch.setattr(embedder, "embed_sequences", slow)
    yield embedder, gate
    gate.set()


def queued(app, texts):
    return app.state.admission.texts == texts


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


async def test_past_max_queue_texts_requests_get_429_and_admitted_ones_are_unharmed(held):
    embedder, gate = held
    settings = ServerSettings(served_model_name=NAME, max_queue_texts=4, batch_wait_ms=0)
    app = create_app(embedder, settings)
    admitted_texts = [["first one", "first two"], ["second one", "second two"]]
    with BackgroundServer(app) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            admitted = []
            for count, texts in enumerate(admitted_texts, 1):
                admitted.append(asyncio.create_task(client.post("/embeddings", json={"model": NAME, "input": texts})))
                await asyncio.to_thread(wait_until, partial(queued, app, 2 * count))
            refused = await client.post("/embeddings", json={"model": NAME, "input": "one more"})
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            error = refused.json()["error"]
            assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
            assert "4 texts are waiting" in error["message"] and "--max-queue" in error["message"]
            assert app.state.admission.texts == 4  # the refusal reserved nothing
            gate.set()
            answers = await asyncio.gather(*admitted)
        for texts, answer in zip(admitted_texts, answers, strict=True):
            assert answer.status_code == 200
            vectors = np.array([item["embedding"] for item in answer.json()["data"]])
            np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-6)
        assert app.state.admission.texts == 0 and app.state.admission.tokens == 0
        again = httpx.post(f"{server.base_url}/embeddings", json={"model": NAME, "input": "one more"}, timeout=60)
        assert again.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'vaembed_rejected_total{reason="queue_texts"} 1.0' in metrics
        assert 'vaembed_requests_total{route="/v1/embeddings",status="429"} 1.0' in metrics


async def test_past_max_queue_tokens_requests_get_429(held):
    embedder, gate = held
    app = create_app(embedder, ServerSettings(served_model_name=NAME, max_queue_tokens=30))
    with BackgroundServer(app) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            first = asyncio.create_task(client.post("/embeddings", json={"model": NAME, "input": "word " * 20}))
            await asyncio.to_thread(wait_until, lambda: app.state.admission.tokens > 0)
            refused = await client.post("/embeddings", json={"model": NAME, "input": "word " * 10})
            assert refused.status_code == 429 and "retry-after" in refused.headers
            assert "--max-queue-tokens" in refused.json()["error"]["message"]
            gate.set()
            assert (await first).status_code == 200


def test_a_lone_request_larger_than_the_queue_bound_is_admitted():
    admission = Admission(max_texts=2, max_tokens=10)
    admission.admit(5, 50)  # nothing waits: admitted (the per-request limits bound it)
    with pytest.raises(Overloaded) as refused:
        admission.admit(1, 1)
    assert refused.value.reason == "queue_texts" and refused.value.retry_after >= 1
    admission.release(5, 50, answered=True)
    admission.admit(1, 1)
    assert (admission.texts, admission.tokens) == (1, 1)


def test_retry_after_follows_the_recent_answer_rate(monkeypatch):
    from vaembed.connectors.serving import admission as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    admission = Admission()
    assert admission.retry_after() == 1  # nothing known yet
    for _ in range(4):  # 10 texts answered each second: 40 texts over the 3 s between the first and last answer
        admission.admit(10, 0)
        clock[0] += 1.0
        admission.release(10, 0, answered=True)
    admission.admit(60, 0)
    assert admission.retry_after() == 5  # ceil(60 / (40 / 3))
    admission.admit(6000, 0)
    assert admission.retry_after() == 60  # capped


def test_while_the_model_loads_health_says_loading_and_requests_get_503(tiny_model_folder):
    ready = threading.Event()

    def load():
        assert ready.wait(30)
        return Embedder.from_pretrained(tiny_model_folder, "va", [1, 2], max_length=128)

    app = create_app(load, ServerSettings(served_model_name=NAME, loading_retry_after=3))
    with BackgroundServer(app) as server:
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        assert health.headers["retry-after"] == "3" and health.json()["model"] == NAME
        refused = httpx.post(f"{server.base_url}/embeddings", json={"model": NAME, "input": "a"}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
        assert refused.json()["error"]["code"] == "loading"
        assert "vaembed_ready 0.0" in httpx.get(f"{server.url}/metrics").text
        ready.set()
        wait_until(lambda: httpx.get(f"{server.url}/health").json()["status"] == "ok")
        answer = httpx.post(f"{server.base_url}/embeddings", json={"model": NAME, "input": "a"}, timeout=30)
        assert answer.status_code == 200
        np.testing.assert_allclose(answer.json()["data"][0]["embedding"], app.state.embedder.encode("a"), atol=1e-6)
        assert "vaembed_ready 1.0" in httpx.get(f"{server.url}/metrics").text


def test_a_failed_load_is_reported_on_health_and_to_the_caller():
    failures = []

    def load():
        raise OSError("no such model: /nowhere")

    app = create_app(load, ServerSettings(served_model_name=NAME), on_load_failure=failures.append)
    with BackgroundServer(app) as server:
        wait_until(lambda: failures)
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        assert "OSError: no such model: /nowhere" in health.json()["reason"]
        refused = httpx.post(f"{server.base_url}/embeddings", json={"model": NAME, "input": "a"}, timeout=30)
        assert refused.status_code == 503 and "failed to load" in refused.json()["error"]["message"]
    assert isinstance(failures[0], OSError)
