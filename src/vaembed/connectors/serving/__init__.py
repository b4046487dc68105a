"""Serving embeddings over HTTP: an OpenAI-compatible server with dynamic batching.

Needs the `serve` extra (`pip install "vaembed[serve]"`): FastAPI and uvicorn.
"""

from __future__ import annotations

from vaembed.connectors.serving.app import ServerSettings, create_app
from vaembed.connectors.serving.background import BackgroundServer
from vaembed.connectors.serving.batcher import BatchStats, DynamicBatcher

__all__ = ["BackgroundServer", "BatchStats", "DynamicBatcher", "ServerSettings", "create_app"]
