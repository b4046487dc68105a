"""The limits, batching, back-pressure and CORS settings of the embeddings server."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerSettings"]


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
        max_queue_texts: Most texts admitted and not yet answered; past it 429
            with `Retry-After` (None: unbounded).
        max_queue_tokens: Most tokens admitted and not yet answered; past it
            429 with `Retry-After` (None: unbounded).
        cors_origins: Origins allowed by CORS (e.g. `https://app.example`, or `*`); none by default.
        loading_retry_after: The `Retry-After` seconds of a 503 while the model loads.
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
    max_queue_texts: int | None = None
    max_queue_tokens: int | None = None
    cors_origins: tuple[str, ...] = ()
    loading_retry_after: int = 5

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_request_tokens", "max_body_bytes", "max_batch_texts", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServerSettings.{name} must be a positive int, not {value!r}")
        for name in ("max_queue_texts", "max_queue_tokens", "loading_retry_after"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ServerSettings.{name} must be a positive int or None, not {value!r}")
        if isinstance(self.cors_origins, str) or not all(isinstance(o, str) for o in self.cors_origins):
            raise TypeError(f"ServerSettings.cors_origins must be a tuple of origin strings, not {self.cors_origins!r}")
        for name in ("query_prompt", "document_prompt"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"ServerSettings.{name} must be a str or None, not {type(getattr(self, name)).__name__}"
                )
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise ValueError(f"ServerSettings.batch_wait_ms must be in [0, 10000], not {self.batch_wait_ms!r}")
