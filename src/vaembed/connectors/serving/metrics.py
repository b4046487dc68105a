"""Prometheus metrics of one server, in a registry of its own (several apps in one process do not clash).

Served at `GET /metrics` in the Prometheus text format:

- `vaembed_requests_total{route, status}`: answered HTTP requests by route and status code.
- `vaembed_request_seconds{route}`: latency of each answered request (histogram).
- `vaembed_texts_total`, `vaembed_tokens_total`: texts and tokens (prompts included) embedded.
- `vaembed_batch_texts`, `vaembed_batch_requests`: texts and requests per engine call (histograms).
- `vaembed_queue_texts`, `vaembed_queue_tokens`: texts and tokens admitted and not yet answered.
- `vaembed_rejected_total{reason}`: requests refused by back-pressure (`queue_texts`, `queue_tokens`, `loading`).
- `vaembed_ready`: 1 once the model is loaded and the batcher runs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class ServerMetrics:
    """The metrics of one app, registered in its own `CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter("vaembed_requests", "Answered HTTP requests", ["route", "status"], registry=registry)
        self.latency = Histogram(
            "vaembed_request_seconds",
            "Seconds to answer a request",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.texts = Counter("vaembed_texts", "Texts embedded", registry=registry)
        self.tokens = Counter("vaembed_tokens", "Tokens embedded, prompts included", registry=registry)
        self.batch_texts = Histogram(
            "vaembed_batch_texts", "Texts per engine call", buckets=_SIZE_BUCKETS, registry=registry
        )
        self.batch_requests = Histogram(
            "vaembed_batch_requests", "Requests merged into one engine call", buckets=_SIZE_BUCKETS, registry=registry
        )
        self.queue_texts = Gauge("vaembed_queue_texts", "Texts admitted and not yet answered", registry=registry)
        self.queue_tokens = Gauge("vaembed_queue_tokens", "Tokens admitted and not yet answered", registry=registry)
        self.rejected = Counter(
            "vaembed_rejected", "Requests refused by back-pressure or while loading", ["reason"], registry=registry
        )
        self.ready = Gauge("vaembed_ready", "1 once the model is loaded and the batcher runs", registry=registry)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, requests: int, texts: int) -> None:
        """Record one engine call's size."""
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
