"""The server's schema, odd bodies, request ids, CORS and metrics, on real uvicorn (loopback) over a tiny model."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vaembed import Embedder
from vaembed.connectors.serving import BackgroundServer, ServerSettings, create_app
from vaembed.connectors.serving.observability import ACCESS_LOGGER

NAME = "tiny"


@pytest.fixture(scope="module")
def embedder(tiny_model_folder):
    return Embedder.from_pretrained(tiny_model_folder, "va", [1, 2], max_length=128)


@pytest.fixture(scope="module")
def server(embedder):
    settings = ServerSettings(served_model_name=NAME, cors_origins=("https://app.example",))
    with BackgroundServer(create_app(embedder, settings)) as running:
        yield running


def post_raw(server, content: bytes, **kwargs):
    headers = {"Content-Type": "application/json"} | kwargs.pop("headers", {})
    return httpx.post(f"{server.base_url}/embeddings", content=content, headers=headers, timeout=60, **kwargs)


def samples(server, name: str) -> dict[tuple, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_openapi_describes_the_embeddings_bodies(server):
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operation = schema["paths"]["/v1/embeddings"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(request["required"]) == {"input", "model"}
    assert {"input", "model", "encoding_format", "dimensions", "input_type", "user"} <= set(request["properties"])
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/EmbeddingResponseBody")
    assert {"400", "404", "413", "429", "503"} <= set(operation["responses"])
    assert "error" in schema["components"]["schemas"]["ErrorResponseBody"]["properties"]
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            b'{"model": "tiny", "input": ["ok", "ok \\ud800 x"]}',
            "'input[1]' holds a lone surrogate (U+D800 at character 3)",
        ),
        (b'{"model": "tiny", "input": "\\udfff"}', "'input' holds a lone surrogate (U+DFFF"),
        (b'{"model": "tiny\\ud800", "input": "a"}', "'model' holds a lone surrogate"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"model": "tiny", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"model": "tiny", "input": ' + b"[" * 500 + b"]" * 500 + b"}", "'input[0]' is a token array"),
        (b'{"model": "tiny", "input": "a", "dimensions": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b'{"model": "tiny", "input": "\xff"}', "not valid JSON"),
    ],
)
def test_odd_bodies_get_a_400_naming_the_problem_and_harm_no_one(server, embedder, content, fragment):
    response = post_raw(server, content)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    good = post_raw(server, b'{"model": "tiny", "input": "still served"}')
    np.testing.assert_allclose(good.json()["data"][0]["embedding"], embedder.encode("still served"), atol=1e-6)


def test_a_surrogate_in_an_ignored_field_is_harmless(server):
    assert post_raw(server, b'{"model": "tiny", "input": "a", "extra": "\\ud800"}').status_code == 200


def test_request_ids_are_echoed_or_generated_and_logged(server, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    given = post_raw(server, b'{"model": "tiny", "input": "a"}', headers={"X-Request-ID": "client-42.a"})
    assert given.headers["x-request-id"] == "client-42.a"
    fresh = httpx.get(f"{server.url}/health")
    generated = fresh.headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    refused = post_raw(server, b"{", headers={"X-Request-ID": "bad id\twith spaces"})
    assert refused.status_code == 400 and refused.headers["x-request-id"] != "bad id\twith spaces"
    lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
    assert any(line.startswith("client-42.a POST /v1/embeddings 200 ") for line in lines)
    assert any(line.startswith(f"{generated} GET /health 200 ") for line in lines)
    assert any(line.startswith(f"{refused.headers['x-request-id']} POST /v1/embeddings 400 ") for line in lines)


def test_cors_allows_the_configured_origin_only(server, embedder):
    preflight = httpx.options(
        f"{server.base_url}/embeddings",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    answer = post_raw(server, b'{"model": "tiny", "input": "a"}', headers={"Origin": "https://app.example"})
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    other = post_raw(server, b'{"model": "tiny", "input": "a"}', headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    with BackgroundServer(create_app(embedder, ServerSettings(served_model_name=NAME))) as plain:
        response = post_raw(plain, b'{"model": "tiny", "input": "a"}', headers={"Origin": "https://app.example"})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_metrics_count_requests_texts_tokens_and_batches_per_app(embedder):
    with (
        BackgroundServer(create_app(embedder, ServerSettings(served_model_name=NAME))) as first,
        BackgroundServer(create_app(embedder, ServerSettings(served_model_name=NAME))) as second,
    ):
        usage = 0
        for texts in (["a b c"], ["one", "two", "three"]):
            response = httpx.post(f"{first.base_url}/embeddings", json={"model": NAME, "input": texts}, timeout=60)
            usage += response.json()["usage"]["prompt_tokens"]
        httpx.post(f"{first.base_url}/embeddings", json={"model": NAME, "input": []}, timeout=60)
        requests = samples(first, "vaembed_requests_total")
        assert requests[("vaembed_requests_total", (("route", "/v1/embeddings"), ("status", "200")))] == 2
        assert requests[("vaembed_requests_total", (("route", "/v1/embeddings"), ("status", "400")))] == 1
        assert samples(first, "vaembed_texts_total")[("vaembed_texts_total", ())] == 4
        assert samples(first, "vaembed_tokens_total")[("vaembed_tokens_total", ())] == usage
        assert samples(first, "vaembed_batch_texts_sum")[("vaembed_batch_texts_sum", ())] == 4
        assert samples(first, "vaembed_queue_texts")[("vaembed_queue_texts", ())] == 0
        assert samples(first, "vaembed_ready")[("vaembed_ready", ())] == 1
        latency = samples(first, "vaembed_request_seconds_count")
        assert latency[("vaembed_request_seconds_count", (("route", "/v1/embeddings"),))] == 3
        assert samples(second, "vaembed_texts_total")[("vaembed_texts_total", ())] == 0  # its own registry
        assert httpx.get(f"{second.url}/health").json()["status"] == "ok"
