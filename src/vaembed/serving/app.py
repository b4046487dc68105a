"""An OpenAI-compatible embeddings server (FastAPI) over one loaded `Embedder`.

Routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`
and `GET /health`. Each request is checked and tokenized on its own; its
sequences then join concurrent requests in a `DynamicBatcher`, so requests
arriving together share forward passes. Every refusal is an OpenAI-shaped
JSON error with a 4xx status; no request can stop the server or change
another request's vectors.

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

from vaembed.embedder import Embedder
from vaembed.prompts import Role
from vaembed.serving.batcher import DynamicBatcher
from vaembed.serving.protocol import RequestError, embedding_response, error_body, parse_embedding_request
from vaembed.tokenization import TokenSequence
from vaembed.version import __version__

__all__ = ["ServerSettings", "create_app"]


@dataclass(frozen=True)
class ServerSettings:
    """Limits and batching of the server.

    Attributes:
        served_model_name: The name clients send as `model` (default the embedder's name).
        max_inputs: Most strings per request (OpenAI's limit is 2048).
        max_request_tokens: Most tokens per request, prompts included.
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
    max_batch_texts: int = 128
    batch_wait_ms: float = 5.0
    batch_size: int = 32
    api_key: str | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_tokens", "max_batch_texts", "batch_size"):
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


def _tokenize(
    embedder: Embedder, texts: list[str], role: Role, settings: ServerSettings
) -> tuple[list[TokenSequence], int]:
    prompt = settings.query_prompt if role == "query" else settings.document_prompt
    try:
        sequences, _ = embedder.tokenize(texts, role=role, prompt=prompt)
    except ValueError as error:
        message = str(error).replace("texts[", "input[", 1)
        raise RequestError(message, param="input", code="context_length_exceeded") from None
    tokens = sum(len(sequence.ids) for sequence in sequences)
    max_tokens = settings.max_request_tokens
    if tokens > max_tokens:
        raise RequestError(
            f"the request has {tokens} tokens with prompts, over this server's limit of {max_tokens} per request",
            param="input",
        )
    return sequences, tokens


def create_app(embedder: Embedder, settings: ServerSettings | None = None) -> FastAPI:
    """Build the server application for a loaded embedder.

    Args:
        embedder: The engine; its recipe, layers, `max_length` and `long_text`
            policy apply to every request (`long_text="error"` refuses longer
            inputs with a 400).
        settings: Limits and batching; default `ServerSettings()`.
    """
    settings = settings or ServerSettings()
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
    async def health() -> dict[str, Any]:
        return {
            "status": "ok" if batcher.running else "starting",
            "model": model_name,
            "recipe": embedder.recipe.name,
            "layers": embedder.layers,
            "dimension": embedder.dimension,
            "max_length": embedder.max_length,
            "long_text": embedder.long_text,
            "version": __version__,
            "batching": asdict(batcher.stats),
        }

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
            body = json.loads(await request.body())
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
