"""Load test of `vaembed serve` on loopback: throughput and latency under concurrency vs the engine.

Real paragraphs of the Python library reference (`vaembed.datasets.python_doc_passages`)
are grouped into requests of 1 to `--max-texts` strings. First the engine
embeds every text once in this process (one `encode` call: the single-process
batched throughput, and the reference vectors). Then `vaembed serve` starts in
its own process (real uvicorn) and, for each client count, the same requests
are sent by that many concurrent clients (base64 vectors, as the official
OpenAI client asks for). Each response is checked against
the engine's vectors; a mismatch or a non-200 status counts as an error.

With `--max-queue N` the server admits at most N texts at a time and answers
429 with `Retry-After` past it: an overload run (far more clients than the
server can serve) then counts 429s apart from errors and timeouts, and its
latencies are those of the accepted requests. The server's RSS is read after
each level.

The run is bounded: a fixed number of requests per level and `--time-limit`
seconds in all, after which it stops and reports what it has.

    python -m benchmarks.serve_load --clients 1,16,64 --requests 256 --out benchmarks/results/serve_load.json
    python -m benchmarks.serve_load --clients 64,256 --requests 512 --max-queue 32 \
        --out benchmarks/results/serve_overload.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.python_docs import python_doc_passages
from vaembed import Embedder
from vaembed.connectors.serving.background import wait_for_health
from vaembed.models.registry import DEFAULT_MODEL


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def plan_requests(count: int, texts: list[str], max_texts: int, seed: int = 0) -> list[list[int]]:
    """Requests as lists of text indices: 1 to `max_texts` consecutive texts each, cycling through the corpus."""
    rng = random.Random(seed)
    requests, cursor = [], 0
    for _ in range(count):
        size = rng.randint(1, max_texts)
        requests.append([(cursor + k) % len(texts) for k in range(size)])
        cursor += size
    return requests


async def run_level(
    url: str,
    model: str,
    clients: int,
    requests: list[list[int]],
    texts: list[str],
    expected: np.ndarray,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Send every request with `clients` concurrent clients; return the level's figures.

    A 429 (the server's queue is full) is counted as rejected, not as an
    error: a client behind a load balancer would go elsewhere. Latencies and
    throughput are those of the accepted requests; a client timeout counts
    apart from errors.
    """
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    errors: list[str] = []
    rejected: list[float] = []  # Retry-After seconds of each 429
    accepted_texts = 0
    timeouts = 0

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal timeouts, accepted_texts
        while not queue.empty():
            chosen = queue.get_nowait()
            start = time.perf_counter()
            try:
                body = {"model": model, "input": [texts[i] for i in chosen], "encoding_format": "base64"}
                response = await session.post("/v1/embeddings", json=body)
            except httpx.TimeoutException:
                timeouts += 1
                continue
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
                continue
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After", "")
                if not retry_after.isdigit():
                    errors.append(f"HTTP 429 without a Retry-After in whole seconds: {retry_after!r}")
                rejected.append(float(retry_after or 0))
                continue
            latencies.append(time.perf_counter() - start)
            accepted_texts += len(chosen)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            data = response.json()["data"]
            vectors = np.stack([np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data])
            if vectors.shape != (len(chosen), expected.shape[1]) or not np.allclose(
                vectors, expected[chosen], atol=1e-4
            ):
                errors.append(f"vectors differ from the engine's for texts {chosen}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as session:
        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall, client_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    accepted = len(latencies)
    return {
        "clients": clients,
        "requests": len(requests),
        "accepted": accepted,
        "rejected_429": len(rejected),
        "max_retry_after_s": max(rejected, default=None),
        "timeouts": timeouts,
        "seconds": wall,
        "requests_per_s": accepted / wall,
        "texts_per_s": accepted_texts / wall,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
        "client_cpu_share": client_cpu / wall,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def _start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "vaembed.cli", "serve", "--model", args.model, "--recipe", args.recipe]
    command += ["--port", str(port), "--log-level", "warning", "--max-batch-texts", str(args.max_batch_texts)]
    command += ["--long-text", "truncate"]
    if args.layers:
        command += ["--layers", args.layers]
    if args.max_queue:
        command += ["--max-queue", str(args.max_queue)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the load test; print a Markdown table; return (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--recipe", default="va")
    parser.add_argument("--layers", help="e.g. 'fallback' (default the recipe's)")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=256, help="requests per client count")
    parser.add_argument("--max-texts", type=int, default=4, help="most texts per request")
    parser.add_argument("--passages", type=int, default=2000, help="corpus size (paragraphs)")
    parser.add_argument("--max-batch-texts", type=int, default=128)
    parser.add_argument("--max-queue", type=int, help="the server's --max-queue (texts); past it, 429s")
    parser.add_argument("--timeout", type=float, default=600, help="client timeout per request, seconds")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds for the whole run")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    started = time.monotonic()

    _, corpus = python_doc_passages(args.passages)
    requests = plan_requests(args.requests, corpus, args.max_texts)
    used = sorted({i for r in requests for i in r})
    embedder = Embedder.from_pretrained(args.model, args.recipe, args.layers, long_text="truncate")
    tokens = sum(len(s.ids) for s in embedder.tokenize([corpus[i] for i in used])[0])
    embedder.encode(corpus[:8])  # warm-up
    start = time.perf_counter()
    reference = embedder.encode([corpus[i] for i in used], batch_size=32, show_progress_bar=False)
    engine_seconds = time.perf_counter() - start
    expected = np.zeros((len(corpus), reference.shape[1]), dtype=np.float32)
    expected[used] = reference
    engine = {
        "texts": len(used),
        "tokens": tokens,
        "seconds": engine_seconds,
        "texts_per_s": len(used) / engine_seconds,
    }
    del embedder

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(args, port)
    levels: list[dict[str, Any]] = []
    try:
        health = wait_for_health(url, server, timeout=300)
        for clients in [int(c) for c in args.clients.split(",")]:
            remaining = args.time_limit - (time.monotonic() - started)
            if remaining <= 0:
                levels.append({"clients": clients, "skipped": "time limit reached"})
                continue
            coroutine = run_level(url, health["model"], clients, requests, corpus, expected, args.timeout)
            try:
                level = asyncio.run(asyncio.wait_for(coroutine, remaining))
            except TimeoutError:
                levels.append({"clients": clients, "skipped": "time limit reached mid-level"})
                continue
            level["ratio_to_engine"] = level["texts_per_s"] / engine["texts_per_s"]
            level["server_rss_mib_after"] = _memory_kib(server.pid, "VmRSS") / 1024
            levels.append(level)
        batching = httpx.get(f"{url}/health", timeout=5).json()["batching"]
        peak_rss_mib = _memory_kib(server.pid, "VmHWM") / 1024
    finally:
        server.terminate()
        server.wait(timeout=60)

    result = {
        "model": args.model,
        "recipe": args.recipe,
        "layers": health["layers"],
        "machine": f"{os.cpu_count()} CPU cores",
        "max_queue_texts": args.max_queue,
        "engine": engine,
        "levels": levels,
        "server_batching": batching,
        "server_peak_rss_mib": peak_rss_mib,
        "command": "python -m benchmarks.serve_load " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(
        f"engine, one process, one encode call: {engine['texts']} texts ({engine['tokens']} tokens) "
        f"in {engine_seconds:.1f} s = {engine['texts_per_s']:.1f} texts/s"
    )
    print("| clients | requests/s | texts/s | vs engine | p50 ms | p99 ms | 429s | timeouts | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for level in levels:
        if "skipped" in level or not level["accepted"]:
            print(f"| {level['clients']} | {level.get('skipped', 'nothing accepted')} | | | | | | | |")
            continue
        print(
            f"| {level['clients']} | {level['requests_per_s']:.2f} | {level['texts_per_s']:.1f} | "
            f"{level['ratio_to_engine']:.2f}x | {level['p50_ms']:.0f} | {level['p99_ms']:.0f} | "
            f"{level['rejected_429']} | {level['timeouts']} | {level['errors']} |"
        )
    print(f"server peak RSS {peak_rss_mib:.0f} MiB; batching {batching}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
