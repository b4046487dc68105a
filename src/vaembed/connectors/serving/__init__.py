"""Serving embeddings over HTTP: an OpenAI-compatible server with dynamic batching and back-pressure.

Needs the `serve` extra (`pip install "vaembed[serve]"`): FastAPI, uvicorn and prometheus-client.
"""

from __future__ import annotations

from vaembed.connectors.serving.admission import Admission, Overloaded
from vaembed.connectors.serving.app import create_app
from vaembed.connectors.serving.background import BackgroundServer
from vaembed.connectors.serving.batcher import BatchStats, DynamicBatcher
from vaembed.connectors.serving.metrics import ServerMetrics
from vaembed.connectors.serving.settings import ServerSettings

__all__ = [
    "Admission",
    "BackgroundServer",
    "BatchStats",
    "DynamicBatcher",
    "Overloaded",
    "ServerMetrics",
    "ServerSettings",
    "create_app",
]
