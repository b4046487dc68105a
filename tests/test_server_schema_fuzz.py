"""Schemathesis against the server's own OpenAPI schema (real uvicorn, tiny model): no 5xx in a bounded run."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from vaembed import Embedder
from vaembed.connectors.serving import BackgroundServer, ServerSettings, create_app

NAME = "tiny"


@pytest.fixture(scope="module")
def server(tiny_model_folder):
    embedder = Embedder.from_pretrained(tiny_model_folder, "va", [1, 2], max_length=64, long_text="truncate")
    server_settings = ServerSettings(served_model_name=NAME, max_inputs=16, max_queue_texts=64)
    with BackgroundServer(create_app(embedder, server_settings)) as running:
        yield running


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_5xx(server, mode):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} >= {"/v1/embeddings", "/health", "/metrics"}
    failures: list[str] = []
    nothing_to_negate: list[str] = []
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            response = case.call(base_url=server.url, timeout=30)
            health = case.operation.path == "/health" and response.status_code == 503  # loading or failed
            if response.status_code >= 500 and not health:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r}: {response.status_code}")

        try:
            call()
        except Unsatisfiable:  # a route without parameters or body has no invalid request to make
            assert mode == GenerationMode.NEGATIVE
            nothing_to_negate.append(operation.path)
    assert failures == []
    registry = server.server.config.app.state.metrics.registry
    sent = [registry.get_sample_value("vaembed_request_seconds_count", {"route": "/v1/embeddings"})]
    assert sent[0] is not None and sent[0] >= 10  # the run did reach the embeddings route
    assert "/v1/embeddings" not in nothing_to_negate
