"""The OpenAI embeddings protocol: request checking, response bodies and error bodies.

Requests follow `POST /v1/embeddings` of the OpenAI API: `input` (a string or
a list of strings), `model`, `encoding_format` (`"float"` or `"base64"`,
little-endian float32), `dimensions` (accepted only when it equals the
model's dimension) and `user` (ignored). One field is added: `input_type`,
`"query"` or `"document"` (the default), choosing the recipe's prompt role.
Token-id inputs (lists of integers) are refused: they would be ids of
another tokenizer. Other unknown fields are ignored, as clients add their own.
A string holding a lone surrogate (a JSON escape such as `ud800` alone, not Unicode text) is
refused naming its index, and so is a body nested too deeply to decode.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from pydantic import ValidationError

from vaembed.connectors.serving.schema import EmbeddingRequestBody
from vaembed.recipes.prompts import Role

__all__ = [
    "EmbeddingRequest",
    "RequestError",
    "decode_json",
    "embedding_response",
    "error_body",
    "parse_embedding_request",
]

EncodingFormat = Literal["float", "base64"]
ROLES: dict[str, Role] = {"query": "query", "document": "document"}


class RequestError(Exception):
    """A request the server refuses, with its HTTP status and OpenAI error fields.

    Args:
        message: What was wrong, naming the field.
        status: The HTTP status (4xx).
        param: The request field at fault, if any.
        code: A machine-readable code, if any.
    """

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        kind = "authentication_error" if self.status == 401 else "invalid_request_error"
        return error_body(self.message, kind, param=self.param, code=self.code)


def error_body(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class EmbeddingRequest:
    """A checked embeddings request.

    Attributes:
        texts: The inputs, one per vector.
        single: Whether `input` was one string.
        encoding_format: How vectors are returned.
        role: The prompt role from `input_type`.
    """

    texts: list[str]
    single: bool
    encoding_format: EncodingFormat
    role: Role


def decode_json(raw: bytes) -> Any:
    """Decode a request body as UTF-8 JSON.

    Raises:
        RequestError: 400 when the body is not UTF-8 JSON, holds a number
            Python refuses to convert, or is nested too deeply to decode.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise RequestError("the request body is not valid JSON: it is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, integers over Python's digit limit
        raise RequestError(f"the request body is not valid JSON: {error}") from None


def _lone_surrogate(text: str, field: str) -> None:
    """Refuse a string that is not Unicode text (a lone UTF-16 surrogate, which JSON can spell)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestError(
            f"'{field}' holds a lone surrogate (U+{ord(text[error.start]):04X} at character {error.start}), "
            "which is not valid Unicode text; send UTF-8 text or escape surrogate pairs in full",
            param=field.split("[")[0],
        ) from None


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_input(value: Any, max_inputs: int) -> tuple[list[str], bool]:
    if isinstance(value, str):
        _lone_surrogate(value, "input")
        return [value], True
    if not isinstance(value, list):
        raise RequestError(f"'input' must be a string or a list of strings, not {_describe(value)}", param="input")
    if not value:
        raise RequestError("'input' is an empty list; give at least one string", param="input")
    if len(value) > max_inputs:
        raise RequestError(
            f"'input' has {len(value)} items, over this server's limit of {max_inputs} per request", param="input"
        )
    for index, item in enumerate(value):
        if isinstance(item, str):
            _lone_surrogate(item, f"input[{index}]")
            continue
        if isinstance(item, (int, list)) and not isinstance(item, bool):
            raise RequestError(
                f"'input[{index}]' is a token array or token id; this server takes strings only "
                "(with LangChain's OpenAIEmbeddings pass check_embedding_ctx_length=False)",
                param="input",
            )
        raise RequestError(f"'input[{index}]' must be a string, not {_describe(item)}", param="input")
    return value, False


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """The string field `name`, one of `choices`; `default` when absent or JSON null (only then)."""
    value = body.get(name)
    if value is None:
        return default
    allowed = " or ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        raise RequestError(f"'{name}' must be a string, {allowed}, not {_describe(value)}", param=name)
    if value not in choices:
        raise RequestError(f"'{name}' must be {allowed}, not {value!r}", param=name)
    return value


def _validated(body: dict[str, Any]) -> EmbeddingRequestBody:
    """The body as `EmbeddingRequestBody` (its declared fields; the checks above already passed)."""
    known = {name: body[name] for name in EmbeddingRequestBody.model_fields if name in body}
    try:
        return EmbeddingRequestBody.model_validate(known)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise RequestError(f"'{field}': {first['msg']}", param=str(first["loc"][0]) if first["loc"] else None) from None


def parse_embedding_request(body: Any, *, served_model: str, dimension: int, max_inputs: int) -> EmbeddingRequest:
    """Check a decoded JSON body against the protocol and this server's limits.

    Args:
        body: The decoded JSON.
        served_model: The only model name this server answers to.
        dimension: The embedding dimension (the one `dimensions` value accepted).
        max_inputs: Most strings per request.

    Raises:
        RequestError: 400 naming the bad field, or 404 for another model.
    """
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, not {_describe(body)}")
    if "input" not in body:
        raise RequestError("'input' is required", param="input")
    texts, single = _check_input(body["input"], max_inputs)
    model = body.get("model")
    if not isinstance(model, str):
        raise RequestError(f"'model' is required and must be a string, not {_describe(model)}", param="model")
    _lone_surrogate(model, "model")
    if model != served_model:
        raise RequestError(
            f"The model '{model}' does not exist; this server serves '{served_model}'",
            status=404,
            param="model",
            code="model_not_found",
        )
    encoding = _choice(body, "encoding_format", ("float", "base64"), "float")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or dimensions != dimension):
        raise RequestError(
            f"'dimensions'={dimensions!r} is not supported: this model's embeddings have {dimension} dimensions "
            "and are not truncatable",
            param="dimensions",
        )
    input_type = _choice(body, "input_type", tuple(ROLES), "document")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError(f"'user' must be a string, not {_describe(user)}", param="user")
    _validated(body)
    return EmbeddingRequest(texts, single, cast(EncodingFormat, encoding), ROLES[input_type])


def _encode_vector(vector: np.ndarray, encoding: EncodingFormat) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.tolist()


def embedding_response(vectors: np.ndarray, *, model: str, encoding: EncodingFormat, tokens: int) -> dict[str, Any]:
    """The response body: one `{"object": "embedding", "index", "embedding"}` per input, and token usage."""
    data = [
        {"object": "embedding", "index": index, "embedding": _encode_vector(vector, encoding)}
        for index, vector in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
