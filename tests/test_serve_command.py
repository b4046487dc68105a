"""`vaembed serve` as users run it: its own process, real uvicorn on loopback, the real default model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import numpy as np
import pytest

from vaembed.cli import main
from vaembed.connectors.serving.background import wait_for_health


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.real_model
def test_serve_command_answers_with_the_engine_vectors_and_stops_cleanly(real_embedder):
    port = free_port()
    command = [sys.executable, "-m", "vaembed.cli", "serve", "--recipe", "aligned-wva", "--layers", "fallback"]
    command += ["--port", str(port), "--served-model-name", "local", "--log-level", "warning"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}", process)
        embedder = real_embedder.with_recipe("aligned-wva", "fallback")
        assert (health["model"], health["layers"], health["long_text"]) == ("local", embedder.layers, "error")
        texts = ["How do I read a file line by line?", "Lists are mutable; tuples are not."]
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings", json={"model": "local", "input": texts}, timeout=120
        )
        assert response.status_code == 200
        vectors = np.array([item["embedding"] for item in response.json()["data"]])
        np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
        too_long = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings", json={"model": "local", "input": ["x " * 9000]}, timeout=120
        )
        assert too_long.status_code == 400
        assert "accepts at most 8192 tokens per input" in too_long.json()["error"]["message"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["serve", "--port", "70000"], "expected a number in [0, 65535]"),
        (["serve", "--batch-wait-ms", "soon"], "expected a number in [0, 10000]"),
        (["serve", "--recipe", "nope"], "nope"),
        (["serve", "--model", "/no/such/model.gguf"], "/no/such/model.gguf"),
    ],
)
def test_serve_command_refuses_bad_arguments_before_listening(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_serve_command_passes_back_pressure_cors_and_logs_request_ids(tiny_model_folder):
    port = free_port()
    command = [sys.executable, "-m", "vaembed.cli", "serve", "--model", str(tiny_model_folder), "--layers", "1,2"]
    command += ["--port", str(port), "--served-model-name", "tiny", "--max-queue", "3", "--max-queue-tokens", "500"]
    command += ["--cors-origin", "https://a.example", "--cors-origin", "https://b.example", "--log-level", "info"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert wait_for_health(f"http://127.0.0.1:{port}", process, timeout=120)["status"] == "ok"
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings",
            json={"model": "tiny", "input": ["a", "b"]},
            headers={"X-Request-ID": "cli-check-1", "Origin": "https://b.example"},
            timeout=60,
        )
        assert response.status_code == 200 and response.headers["x-request-id"] == "cli-check-1"
        assert response.headers["access-control-allow-origin"] == "https://b.example"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    log = process.stderr.read()
    assert "listening on" in log and "loaded" in log
    assert "cli-check-1 POST /v1/embeddings 200" in log


def test_serve_command_exits_with_1_when_the_model_fails_to_load_behind_the_server(capsys):
    assert main(["serve", "--model", "no-such-model-preset", "--port", "0", "--log-level", "warning"]) == 1
    error = capsys.readouterr().err
    assert "listening on" in error and "the model failed to load: could not load model 'no-such-model-preset'" in error
