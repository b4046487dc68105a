"""Pydantic models of the embeddings endpoint's bodies, so `/openapi.json` and `/docs` describe them.

`EmbeddingRequestBody` is what `POST /v1/embeddings` accepts (unknown fields
are allowed, as clients add their own); `EmbeddingResponseBody` what it
answers; `ErrorResponseBody` the OpenAI-shaped error of every refusal.
The checks that name the offending field and item (and this server's
limits) are in `protocol.parse_embedding_request`; a body it accepts also
validates against `EmbeddingRequestBody`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EmbeddingItem",
    "EmbeddingRequestBody",
    "EmbeddingResponseBody",
    "ErrorDetail",
    "ErrorResponseBody",
    "Usage",
]


class EmbeddingRequestBody(BaseModel):
    """The body of `POST /v1/embeddings` (OpenAI's, plus `input_type`)."""

    model_config = ConfigDict(extra="allow")

    input: str | list[str] = Field(
        description="One string or a non-empty list of strings (token-id arrays are refused)",
        examples=["The cat sat on the mat."],
    )
    model: str = Field(description="The served model name (see GET /v1/models)")
    encoding_format: Literal["float", "base64"] | None = Field(
        None, description="'float' (default) or 'base64' (little-endian float32)"
    )
    dimensions: int | None = Field(None, description="Accepted only when it equals the model's dimension")
    input_type: Literal["query", "document"] | None = Field(
        None, description="The prompt role: 'query' or 'document' (default)"
    )
    user: str | None = Field(None, description="Ignored")


class EmbeddingItem(BaseModel):
    """One vector of the response."""

    object: Literal["embedding"] = "embedding"
    index: int = Field(description="The input's position in the request")
    embedding: list[float] | str = Field(description="The vector, or its base64 float32 bytes")


class Usage(BaseModel):
    """Tokens of the request, prompts included."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponseBody(BaseModel):
    """The answer of `POST /v1/embeddings`."""

    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ErrorDetail(BaseModel):
    """What was wrong: a message naming the field (and item), its type, the field and a code."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponseBody(BaseModel):
    """An OpenAI-shaped error body."""

    error: ErrorDetail
