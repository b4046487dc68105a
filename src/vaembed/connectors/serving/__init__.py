"""Serving embeddings over HTTP: an OpenAI-compatible server with dynamic batching and back-pressure.

Needs the `serve` extra (`pip install "vaembed[serve]"`): FastAPI, uvicorn and prometheus-client.
Importing this package (or any module in it) without them raises an `ImportError`
that holds that command.
"""

from __future__ import annotations

from vaembed.connectors.extras import missing_extra

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:
    raise missing_extra("serve", "The embeddings server", error) from error

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
