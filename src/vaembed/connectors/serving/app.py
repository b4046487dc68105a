"""An OpenAI-compatible embeddings server (FastAPI) over one loaded `Embedder`.

Routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`
and `GET /health` (`"status": "ok"`; `"failed"` with a `"reason"` and HTTP
503 once the batcher's worker has died). Each request is checked and tokenized on its own; its
sequences then join concurrent requests in a `DynamicBatcher`, so requests
arriving together share forward passes. Every refusal is an OpenAI-shaped
JSON error with a 4xx status (413 for a body over `max_body_bytes`); 503
means the batcher takes no jobs (shutting down, or failed: see `/health`);
500 means the embedding itself failed. No request can stop the server or
change another request's vectors.

Run it with `vaembed serve` or, for an embedder you built, with
`uvicorn.run(create_app(embedder))`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vaembed.connectors.serving.batcher import BatcherUnavailable, DynamicBatcher
from vaembed.connectors.serving.protocol import RequestError, embedding_response, error_body, parse_embedding_request
from vaembed.embedder import Embedder
from vaembed.engine.tokenization import TextTooLongError, TokenSequence
from vaembed.recipes.prompts import Role
from vaembed.version import __version__

__all__ = ["ServerSettings", "create_app"]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and batching of the server.

    Attributes:
        served_model_name: The name clients send as `model` (default the embedder's name).
        max_inputs: Most strings per request (OpenAI's limit is 2048).
        max_request_tokens: Most tokens per request, prompts included.
        max_body_bytes: Largest request body, checked before it is parsed (413 above it).
        max_batch_texts: Most texts merged into one engine call.
        batch_wait_ms: How long a lone request waits for others to share its batch.
        batch_size: Most sequences per forward pass (the engine's `batch_size`).
        api_key: When set, `/v1` routes need `Authorization: Bearer <api_key>`.
        query_prompt: Instruction for requests with `"input_type": "query"` (a
            template with `{text}` or a prefix; see `Embedder.encode`'s `prompt`).
        document_prompt: Instruction for other requests.
    """

    served_model_name: str | None = None
    max_inputs: int = 2048
    max_request_tokens: int = 300_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_texts: int = 128
    batch_wait_ms: float = 5.0
    batch_size: int = 32
    api_key: str | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_tokens", "max_body_bytes", "max_batch_texts", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerSettings.{name} must be a positive int, not {value!r}")
        for name in ("query_prompt", "document_prompt"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"ServerSettings.{name} must be a str or None, not {type(getattr(self, name)).__name__}"
                )
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise ValueError(f"ServerSettings.batch_wait_ms must be in [0, 10000], not {self.batch_wait_ms!r}")


def _error_response(status: int, body: dict[str, Any]) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


_PROBE_TEXT = "a"


def _prompt(settings: ServerSettings, role: Role) -> str | None:
    return settings.query_prompt if role == "query" else settings.document_prompt


def _tokenize(
    embedder: Embedder, texts: list[str], role: Role, settings: ServerSettings
) -> tuple[list[TokenSequence], int]:
    """Tokenize one request's texts; a text over `max_length` is the client's 400, any other failure a 500."""
    try:
        sequences, _ = embedder.tokenize(texts, role=role, prompt=_prompt(settings, role))
    except TextTooLongError as error:  # any other error is the server's configuration or a bug (500)
        raise RequestError(
            f"input[{error.index}] has {error.tokens} tokens with this server's prompt; this server accepts at "
            f"most {error.max_length} "
            "tokens per input. Shorten or split it (the server's operator can start it with "
            "--long-text truncate or --long-text chunk to accept longer inputs)",
            param="input",
            code="context_length_exceeded",
        ) from None
    tokens = sum(len(sequence.ids) for sequence in sequences)
    max_tokens = settings.max_request_tokens
    if tokens > max_tokens:
        raise RequestError(
            f"the request has {tokens} tokens with prompts, over this server's limit of {max_tokens} per request",
            param="input",
        )
    return sequences, tokens


def _check_prompts(embedder: Embedder, settings: ServerSettings) -> None:
    """Tokenize a one-word probe under each role's prompt, so a bad prompt stops the server from starting.

    Raises:
        ValueError: A prompt is malformed (e.g. `{text}` twice) or leaves no room
            for text within the embedder's `max_length` (the setting is named).
    """
    roles: tuple[Role, ...] = ("query", "document")
    for role in roles:
        prompt = _prompt(settings, role)
        source = (
            f"the {role} prompt {prompt!r} (ServerSettings.{role}_prompt, vaembed serve --{role}-prompt)"
            if prompt is not None
            else f"the recipe's {role} prompt"
        )
        try:
            embedder.tokenize([_PROBE_TEXT], role=role, prompt=prompt)
        except (TypeError, ValueError) as error:
            if isinstance(error, TextTooLongError):
                problem = (
                    f"leaves no room for text: with a one-word text it takes {error.tokens} tokens, "
                    f"over max_length={embedder.max_length}"
                )
            else:
                problem = f"cannot be used with this embedder (max_length={embedder.max_length}): {error}"
            raise ValueError(f"{source} {problem}") from None


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it is over `limit` bytes (before it is read in full).

    Raises:
        RequestError: 413 when `Content-Length` or the bytes received exceed `limit`.
    """

    def too_large(size: str) -> RequestError:
        return RequestError(
            f"the request body is {size} bytes, over this server's limit of {limit} bytes; send fewer or shorter "
            "inputs per request",
            status=413,
            code="request_too_large",
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(declared)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(f"more than {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(embedder: Embedder, settings: ServerSettings | None = None) -> FastAPI:
    """Build the server application for a loaded embedder.

    Args:
        embedder: The engine; its recipe, layers, `max_length` and `long_text`
            policy apply to every request (`long_text="error"` refuses longer
            inputs with a 400).
        settings: Limits and batching; default `ServerSettings()`.

    Raises:
        ValueError: The configured query or document prompt is malformed or
            leaves no room for text within the embedder's `max_length`.
    """
    settings = settings or ServerSettings()
    _check_prompts(embedder, settings)
    model_name = settings.served_model_name or embedder.name
    created = int(time.time())

    def embed(sequences: list[TokenSequence], count: int) -> Any:
        return embedder.embed_sequences(sequences, count, batch_size=settings.batch_size)

    batcher = DynamicBatcher(embed, max_batch_texts=settings.max_batch_texts, max_wait_s=settings.batch_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="vaembed", version=__version__, lifespan=lifespan)
    app.state.embedder = embedder
    app.state.batcher = batcher
    app.state.settings = settings

    @app.exception_handler(RequestError)
    async def refuse(request: Request, error: RequestError) -> JSONResponse:
        return _error_response(error.status, error.body())

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error_response(error.status_code, error_body(str(error.detail), "invalid_request_error"))

    @app.exception_handler(BatcherUnavailable)
    async def unavailable(request: Request, error: BatcherUnavailable) -> JSONResponse:
        body = error_body(f"the server cannot embed now: {error}", "server_error", code="service_unavailable")
        return _error_response(503, body)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        message = " ".join(str(error).split()) or type(error).__name__
        return _error_response(500, error_body(f"the embedding failed: {message}", "server_error"))

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if settings.api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode()):
                return _error_response(
                    401, RequestError("a valid API key is required (Authorization: Bearer ...)", status=401).body()
                )
        return await call_next(request)

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "vaembed"}

    @app.get("/health")
    async def health() -> JSONResponse:
        failure = batcher.failure
        status = "failed" if failure is not None else "ok" if batcher.running else "starting"
        body = {
            "status": status,
            **({"reason": failure} if failure is not None else {}),
            "model": model_name,
            "recipe": embedder.recipe.name,
            "layers": embedder.layers,
            "postprocess": embedder.recipe.postprocess,
            "dimension": embedder.dimension,
            "max_length": embedder.max_length,
            "long_text": embedder.long_text,
            "version": __version__,
            "batching": asdict(batcher.stats),
        }
        return JSONResponse(body, status_code=503 if failure is not None else 200)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model}")
    async def get_model(model: str) -> dict[str, Any]:
        if model != model_name:
            raise RequestError(f"The model '{model}' does not exist", status=404, param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/embeddings")
    async def create_embeddings(request: Request) -> JSONResponse:
        try:
            body = json.loads(await _read_body(request, settings.max_body_bytes))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from None
        parsed = parse_embedding_request(
            body, served_model=model_name, dimension=embedder.dimension, max_inputs=settings.max_inputs
        )
        sequences, tokens = await asyncio.to_thread(_tokenize, embedder, parsed.texts, parsed.role, settings)
        vectors = await batcher.submit(sequences, len(parsed.texts))
        payload = embedding_response(vectors.numpy(), model=model_name, encoding=parsed.encoding_format, tokens=tokens)
        return JSONResponse(payload)

    return app
