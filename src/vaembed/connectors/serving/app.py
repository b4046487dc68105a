"""An OpenAI-compatible embeddings server (FastAPI) over one `Embedder`, loaded or loading.

Routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`,
`GET /metrics` (Prometheus, `metrics.py`) and `GET /health` (`"status": "ok"`;
`"loading"` with HTTP 503 while the model loads; `"failed"` with a `"reason"`
and HTTP 503 once loading or the batcher's worker failed). `/openapi.json`
and `/docs` describe the bodies (`schema.py`). Each request is checked and
tokenized on its own; its sequences then join concurrent requests in a
`DynamicBatcher`, so requests arriving together share forward passes.

Every refusal is an OpenAI-shaped JSON error: 4xx naming the problem (413
for a body over `max_body_bytes`), 429 with `Retry-After` past
`max_queue_texts` or `max_queue_tokens` (`admission.py`), 503 with
`Retry-After` while the model loads, 503 when the batcher takes no jobs
(shutting down, or failed: see `/health`); 500 means the embedding itself
failed. Every response carries `X-Request-ID` (`observability.py`). No
request can stop the server or change another request's vectors.

Run it with `vaembed serve` or, for an embedder you built, with
`uvicorn.run(create_app(embedder))`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from vaembed.connectors.serving.admission import Admission, Overloaded
from vaembed.connectors.serving.batcher import BatcherUnavailable, DynamicBatcher
from vaembed.connectors.serving.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from vaembed.connectors.serving.observability import REQUEST_ID_HEADER, add_observability
from vaembed.connectors.serving.protocol import (
    RequestError,
    decode_json,
    embedding_response,
    error_body,
    parse_embedding_request,
)
from vaembed.connectors.serving.requests import check_prompts, error_response, read_body, tokenize_request
from vaembed.connectors.serving.schema import EmbeddingRequestBody, EmbeddingResponseBody, ErrorResponseBody
from vaembed.connectors.serving.settings import ServerSettings
from vaembed.embedder import Embedder
from vaembed.engine.tokenization import TokenSequence
from vaembed.version import __version__

__all__ = ["ServerSettings", "create_app"]

Loader = Callable[[], Embedder]


class NotReady(Exception):
    """The model is still loading (HTTP 503 with `Retry-After`)."""


def _server_error(error: Exception) -> JSONResponse:
    message = " ".join(str(error).split()) or type(error).__name__
    return error_response(500, error_body(f"the embedding failed: {message}", "server_error"))


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponseBody, "description": description}
    for status, description in {
        400: "A field is wrong (the message names it, and the item's index)",
        401: "A valid API key is required",
        404: "Another model was asked for",
        413: "The body is over the server's limit",
        429: "The queue is full; retry after `Retry-After` seconds",
        503: "The model is loading (with `Retry-After`) or the batcher takes no jobs",
    }.items()
}
_REQUEST_SCHEMA = EmbeddingRequestBody.model_json_schema()


def create_app(
    embedder: Embedder | Loader,
    settings: ServerSettings | None = None,
    *,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the server application for an embedder, or for a function that loads one.

    Args:
        embedder: The engine; its recipe, layers, `max_length` and `long_text`
            policy apply to every request (`long_text="error"` refuses longer
            inputs with a 400). A function instead is called on a worker thread
            once the server starts; until it returns, `/health` says `loading`
            and embedding requests get 503 with `Retry-After`.
        settings: Limits, batching, back-pressure and CORS; default `ServerSettings()`.
        on_load_failure: Called with the error when the loading function (or the prompt check after it) fails.

    Raises:
        ValueError: The configured query or document prompt is malformed or
            leaves no room for text within a given embedder's `max_length`.
    """
    settings = settings or ServerSettings()
    loader = None if isinstance(embedder, Embedder) else embedder
    if isinstance(embedder, Embedder):
        check_prompts(embedder, settings)
    created = int(time.time())
    metrics = ServerMetrics()
    admission = Admission(
        settings.max_queue_texts,
        settings.max_queue_tokens,
        on_change=lambda texts, tokens: (metrics.queue_texts.set(texts), metrics.queue_tokens.set(tokens)),
    )

    def embed(sequences: list[TokenSequence], count: int) -> Any:
        return app.state.embedder.embed_sequences(sequences, count, batch_size=settings.batch_size)

    batcher = DynamicBatcher(
        embed,
        max_batch_texts=settings.max_batch_texts,
        max_wait_s=settings.batch_wait_ms / 1000,
        on_batch=metrics.observe_batch,
    )

    def model_name() -> str:
        ready = app.state.embedder
        return settings.served_model_name or (ready.name if ready is not None else "loading")

    async def load(function: Loader) -> None:
        try:
            loaded = await asyncio.to_thread(function)
            check_prompts(loaded, settings)
        except BaseException as error:  # reported on /health; the server keeps answering it
            app.state.load_failure = " ".join(f"{type(error).__name__}: {error}".split())
            if on_load_failure is not None:
                on_load_failure(error)
            if not isinstance(error, Exception):
                raise
            return
        app.state.embedder = loaded
        metrics.ready.set(1)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        task = asyncio.get_running_loop().create_task(load(loader)) if loader is not None else None
        if task is None:
            metrics.ready.set(1)
        try:
            yield
        finally:
            metrics.ready.set(0)
            if task is not None and not task.done():
                task.cancel()  # the loading thread itself runs to its end
            await batcher.stop()

    app = FastAPI(
        title="vaembed",
        version=__version__,
        lifespan=lifespan,
        description="OpenAI-compatible embeddings from a frozen decoder-only LLM",
    )
    app.state.embedder = None if loader is not None else embedder
    app.state.load_failure = None
    app.state.batcher = batcher
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.admission = admission

    @app.exception_handler(RequestError)
    async def refuse(request: Request, error: RequestError) -> JSONResponse:
        return error_response(error.status, error.body())

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "path", "query")]
        field = ".".join(location) or "request"
        body = error_body(
            f"'{field}': {first.get('msg')}", "invalid_request_error", param=location[0] if location else None
        )
        return error_response(400, body)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, error_body(str(error.detail), "invalid_request_error"))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> JSONResponse:
        metrics.rejected.labels(reason=error.reason).inc()
        body = error_body(error.message, "rate_limit_error", code="queue_full")
        return error_response(429, body, {"Retry-After": str(error.retry_after)})

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, error: NotReady) -> JSONResponse:
        metrics.rejected.labels(reason="loading").inc()
        body = error_body("the model is still loading; retry later (see /health)", "server_error", code="loading")
        return error_response(503, body, {"Retry-After": str(settings.loading_retry_after)})

    @app.exception_handler(BatcherUnavailable)
    async def unavailable(request: Request, error: BatcherUnavailable) -> JSONResponse:
        body = error_body(f"the server cannot embed now: {error}", "server_error", code="service_unavailable")
        return error_response(503, body)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return _server_error(error)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if settings.api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
                return error_response(
                    401, RequestError("a valid API key is required (Authorization: Bearer ...)", status=401).body()
                )
        return await call_next(request)

    add_observability(app, metrics, _server_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )

    def model_card() -> dict[str, Any]:
        return {"id": model_name(), "object": "model", "created": created, "owned_by": "vaembed"}

    @app.get("/health")
    async def health() -> JSONResponse:
        ready: Embedder | None = app.state.embedder
        failure = app.state.load_failure or batcher.failure
        if failure is not None:
            status = "failed"
        elif ready is None:
            status = "loading"
        else:
            status = "ok" if batcher.running else "starting"
        body: dict[str, Any] = {"status": status, **({"reason": failure} if failure is not None else {})}
        body["model"] = model_name()
        if ready is not None:
            body |= {
                "recipe": ready.recipe.name,
                "layers": ready.layers,
                "postprocess": ready.recipe.postprocess,
                "dimension": ready.dimension,
                "max_length": ready.max_length,
                "long_text": ready.long_text,
            }
        body |= {
            "version": __version__,
            "batching": asdict(batcher.stats),
            "queue": {"texts": admission.texts, "tokens": admission.tokens},
        }
        headers = {"Retry-After": str(settings.loading_retry_after)} if status == "loading" else None
        return JSONResponse(body, status_code=200 if status in ("ok", "starting") else 503, headers=headers)

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model}")
    async def get_model(model: str) -> dict[str, Any]:
        if model != model_name():
            raise RequestError(f"The model '{model}' does not exist", status=404, param="model", code="model_not_found")
        return model_card()

    @app.post(
        "/v1/embeddings",
        response_model=EmbeddingResponseBody,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _REQUEST_SCHEMA}}}},
    )
    async def create_embeddings(request: Request) -> JSONResponse:
        """Embed one string or a list of strings (OpenAI's embeddings API, plus `input_type`)."""
        body = decode_json(await read_body(request, settings.max_body_bytes))
        ready: Embedder | None = app.state.embedder
        if ready is None:
            if app.state.load_failure is not None:
                raise BatcherUnavailable(f"the model failed to load: {app.state.load_failure}")
            raise NotReady()
        parsed = parse_embedding_request(
            body, served_model=model_name(), dimension=ready.dimension, max_inputs=settings.max_inputs
        )
        admission.check(len(parsed.texts))  # a full queue is refused before tokenizing
        sequences, tokens = await asyncio.to_thread(tokenize_request, ready, parsed.texts, parsed.role, settings)
        admission.admit(len(parsed.texts), tokens)
        answered = False
        try:
            vectors = await batcher.submit(sequences, len(parsed.texts))
            answered = True
        finally:
            admission.release(len(parsed.texts), tokens, answered=answered)
        metrics.texts.inc(len(parsed.texts))
        metrics.tokens.inc(tokens)
        payload = embedding_response(
            vectors.numpy(), model=model_name(), encoding=parsed.encoding_format, tokens=tokens
        )
        return JSONResponse(payload)

    return app
