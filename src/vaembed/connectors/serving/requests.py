"""One embeddings request's steps before the batcher: its body read within a limit, its texts tokenized.

Also the error responses (ASCII JSON, so an error echoing a client's string
always renders) and the start-up check of the configured prompts.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from vaembed.connectors.serving.protocol import RequestError
from vaembed.connectors.serving.settings import ServerSettings
from vaembed.embedder import Embedder
from vaembed.engine.tokenization import TextTooLongError, TokenSequence
from vaembed.recipes.prompts import Role

__all__ = ["ErrorJSONResponse", "check_prompts", "error_response", "read_body", "tokenize_request"]


class ErrorJSONResponse(JSONResponse):
    """A JSON response with non-ASCII escaped, so an error echoing a client's string (even a lone surrogate) renders."""

    def render(self, content: Any) -> bytes:
        """The body as ASCII JSON."""
        import json

        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """An error body with its status (`WWW-Authenticate` on a 401)."""
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return ErrorJSONResponse(body, status_code=status, headers=headers or None)


_PROBE_TEXT = "a"


def _prompt(settings: ServerSettings, role: Role) -> str | None:
    return settings.query_prompt if role == "query" else settings.document_prompt


def tokenize_request(
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


def check_prompts(embedder: Embedder, settings: ServerSettings) -> None:
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


async def read_body(request: Request, limit: int) -> bytes:
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
