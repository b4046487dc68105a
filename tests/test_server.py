"""The OpenAI-compatible server on real uvicorn (loopback), over a tiny model."""

from __future__ import annotations

import asyncio
import base64

import httpx
import numpy as np
import pytest

from vaembed import Embedder
from vaembed.connectors.serving import BackgroundServer, ServerSettings, create_app

NAME = "tiny"
QUERY_PROMPT = "Find notes that answer: "
DOCS = ["The cat sat on the mat.", "Stocks fell sharply on Monday.", "", "Photosynthesis needs light. " * 3]


@pytest.fixture(scope="module")
def embedder(tiny_model_folder):
    return Embedder.from_pretrained(tiny_model_folder, "aligned-wva", [1, 2], max_length=128, long_text="error")


@pytest.fixture(scope="module")
def server(embedder):
    settings = ServerSettings(
        served_model_name=NAME, max_inputs=8, max_request_tokens=400, batch_wait_ms=20, query_prompt=QUERY_PROMPT
    )
    with BackgroundServer(create_app(embedder, settings)) as running:
        yield running


def post(server, body, **kwargs):
    return httpx.post(f"{server.base_url}/embeddings", json=body, timeout=60, **kwargs)


def vectors_of(response):
    data = response.json()["data"]
    assert [item["index"] for item in data] == list(range(len(data)))
    return np.array([item["embedding"] for item in data], dtype=np.float32)


def test_health_and_models_describe_the_engine(server, embedder):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert (health["model"], health["recipe"], health["layers"]) == (NAME, "aligned-wva", embedder.layers)
    assert health["dimension"] == embedder.dimension
    models = httpx.get(f"{server.base_url}/models").json()
    assert [card["id"] for card in models["data"]] == [NAME]
    assert httpx.get(f"{server.base_url}/models/{NAME}").json()["id"] == NAME
    assert httpx.get(f"{server.base_url}/models/other").status_code == 404


@pytest.mark.parametrize("role", ["document", "query"])
def test_float_vectors_equal_the_engine_for_each_role(server, embedder, role):
    body = {"model": NAME, "input": DOCS} | ({"input_type": role} if role == "query" else {})
    response = post(server, body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["object"] == "list" and payload["model"] == NAME
    prompt = QUERY_PROMPT if role == "query" else None
    expected = embedder.encode(DOCS, role=role, prompt=prompt)
    np.testing.assert_allclose(vectors_of(response), expected, atol=1e-6)
    sequences, _ = embedder.tokenize(DOCS, role=role, prompt=prompt)
    assert payload["usage"]["prompt_tokens"] == sum(len(s.ids) for s in sequences)


def test_queries_get_the_query_instruction(server):
    documents = vectors_of(post(server, {"model": NAME, "input": DOCS[:2]}))
    queries = vectors_of(post(server, {"model": NAME, "input": DOCS[:2], "input_type": "query"}))
    assert not np.allclose(documents, queries)


def test_base64_is_little_endian_float32_of_the_same_vectors(server, embedder):
    response = post(server, {"model": NAME, "input": DOCS[0], "encoding_format": "base64"})
    [item] = response.json()["data"]
    decoded = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, embedder.encode(DOCS[0]), atol=1e-6)


def test_dimensions_equal_to_the_model_is_accepted(server, embedder):
    response = post(server, {"model": NAME, "input": "a", "dimensions": embedder.dimension, "user": "u1"})
    assert response.status_code == 200


LONG = "word " * 200

BAD_REQUESTS = [
    ({"model": NAME, "input": []}, 400, "empty list"),
    ({"model": NAME}, 400, "'input' is required"),
    ({"model": NAME, "input": 5}, 400, "string or a list of strings, not int"),
    ({"model": NAME, "input": {"text": "a"}}, 400, "not dict"),
    ({"model": NAME, "input": ["a", 3]}, 400, "'input[1]' is a token array"),
    ({"model": NAME, "input": [[1, 2, 3]]}, 400, "token array"),
    ({"model": NAME, "input": ["a", None]}, 400, "'input[1]' must be a string, not null"),
    ({"model": NAME, "input": ["a"] * 9}, 400, "9 items, over this server's limit of 8"),
    ({"input": "a"}, 400, "'model' is required"),
    ({"model": "text-embedding-3-small", "input": "a"}, 404, "does not exist"),
    ({"model": NAME, "input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": NAME, "input": "a", "dimensions": 7}, 400, "'dimensions'=7 is not supported"),
    ({"model": NAME, "input": "a", "input_type": "passage"}, 400, "input_type"),
    ({"model": NAME, "input": "a", "input_type": ["query"]}, 400, "'input_type' must be a string"),
    ({"model": NAME, "input": "a", "encoding_format": {"f": 1}}, 400, "'encoding_format' must be a string"),
    ({"model": NAME, "input": "a", "user": 3}, 400, "'user' must be a string"),
    ({"model": NAME, "input": ["short", LONG]}, 400, "input[1] has"),
    ({"model": NAME, "input": ["word " * 20] * 8}, 400, "464 tokens with prompts, over this server's limit of 400"),
    (["not", "an", "object"], 400, "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), BAD_REQUESTS)
def test_bad_requests_get_openai_errors_naming_the_problem(server, body, status, fragment):
    response = post(server, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error"


def test_malformed_json_unknown_routes_and_wrong_methods(server):
    response = httpx.post(f"{server.base_url}/embeddings", content=b"{not json", timeout=30)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert httpx.get(f"{server.base_url}/embeddings").status_code == 405
    missing = httpx.get(f"{server.base_url}/chat/completions")
    assert missing.status_code == 404 and "error" in missing.json()


async def test_concurrent_requests_are_batched_and_bad_ones_harm_no_one(server, embedder):
    texts = [f"note {i}: {DOCS[i % 2]} number {i}" for i in range(24)]
    expected = embedder.encode(texts)
    before = server.server.config.app.state.batcher.stats.batches
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        good = [client.post("/embeddings", json={"model": NAME, "input": [t]}) for t in texts]
        bad = [client.post("/embeddings", json={"model": NAME, "input": [LONG]}) for _ in range(4)]
        responses = await asyncio.gather(*good, *bad)
    for index, response in enumerate(responses[: len(texts)]):
        assert response.status_code == 200
        np.testing.assert_allclose(vectors_of(response)[0], expected[index], atol=1e-5)
    assert all(r.status_code == 400 for r in responses[len(texts) :])
    stats = server.server.config.app.state.batcher.stats
    assert stats.batches - before < len(texts)
    assert stats.largest_batch > 1


def test_api_key_guards_v1_routes_only(embedder):
    settings = ServerSettings(served_model_name=NAME, api_key="secret")
    with BackgroundServer(create_app(embedder, settings)) as guarded:
        body = {"model": NAME, "input": "a"}
        missing = post(guarded, body)
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        assert post(guarded, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert post(guarded, body, headers={"Authorization": "Bearer secret"}).status_code == 200
        assert httpx.get(f"{guarded.url}/health").status_code == 200


def test_a_body_over_the_limit_is_refused_with_413_before_parsing(embedder):
    settings = ServerSettings(served_model_name=NAME, max_body_bytes=300)
    with BackgroundServer(create_app(embedder, settings)) as small:
        assert post(small, {"model": NAME, "input": "a short text"}).status_code == 200
        response = post(small, {"model": NAME, "input": "word " * 100})
        assert response.status_code == 413
        assert "over this server's limit of 300 bytes" in response.json()["error"]["message"]
        assert post(small, {"model": NAME, "input": "still served"}).status_code == 200


def test_a_prompt_leaving_no_room_for_text_stops_the_app_from_being_built(embedder):
    settings = ServerSettings(served_model_name=NAME, query_prompt="word " * 200)
    with pytest.raises(ValueError, match="the query prompt .* leaves no room for text"):
        create_app(embedder, settings)


async def test_health_reports_a_failed_batcher_with_503(embedder):
    app = create_app(embedder, ServerSettings(served_model_name=NAME))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        app.state.batcher._worker.cancel()
        await asyncio.sleep(0.01)
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "failed"
        assert "cancelled" in health.json()["reason"]
        refused = await client.post("/v1/embeddings", json={"model": NAME, "input": "a"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_inputs", 0),
        ("max_body_bytes", 0),
        ("batch_size", True),
        ("max_batch_texts", -3),
        ("batch_wait_ms", -1.0),
        ("query_prompt", 3),
    ],
)
def test_bad_server_settings_are_named(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        ServerSettings(**{field: value})
