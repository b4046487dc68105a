"""Request ids, one log line per request, and request metrics: the server's outermost HTTP middleware.

Every response carries `X-Request-ID`: the client's own when it sent a
plausible one (1 to 128 characters of letters, digits and `._:-`), a new
random id otherwise. The same id starts the request's log line on the
`vaembed.serving.access` logger (`<id> <method> <path> <status> <ms> ms`),
so a client's report can be matched to the server's log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from vaembed.connectors.serving.metrics import ServerMetrics

__all__ = ["ACCESS_LOGGER", "REQUEST_ID_HEADER", "add_observability", "request_id_of"]

ACCESS_LOGGER = "vaembed.serving.access"
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LOG = logging.getLogger(ACCESS_LOGGER)


def request_id_of(given: str | None) -> str:
    """The client's request id when it is plausible, else a new random one."""
    if given is not None and _VALID_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _route_label(request: Request) -> str:
    """The matched route's path template (bounded label values); `other` for unknown paths."""
    route = request.scope.get("route")
    return getattr(route, "path", "other")


def add_observability(app: FastAPI, metrics: ServerMetrics, on_error: Callable[[Exception], Response]) -> None:
    """Add the request-id, logging and metrics middleware to `app`.

    Args:
        app: The application; add this after every other middleware but CORS.
        metrics: The app's metrics.
        on_error: The 500 response for an exception no handler answered.
    """

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Response:
        request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        request.state.request_id = request_id
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as error:  # an unhandled bug still gets an OpenAI-shaped 500 with its id
            _LOG.exception("%s %s %s failed", request_id, request.method, request.url.path)
            response = on_error(error)
        seconds = time.perf_counter() - start
        response.headers[REQUEST_ID_HEADER] = request_id
        metrics.observe_request(_route_label(request), response.status_code, seconds)
        _LOG.info(
            "%s %s %s %d %.1f ms", request_id, request.method, request.url.path, response.status_code, 1000 * seconds
        )
        return response
