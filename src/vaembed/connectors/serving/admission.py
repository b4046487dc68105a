"""Back-pressure: a bound on the texts and tokens admitted and not yet answered.

A request is admitted before it is queued for the batcher; past either bound
it is refused at once with HTTP 429 and a `Retry-After` (seconds) estimated
from the recent answer rate, so clients back off instead of timing out.
Admission is decided on the event loop without awaiting, so the check and
the reservation are one step: a refused request never touches the reserved
share of those already admitted, which run to the end as if it never came.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["Admission", "Overloaded"]


class Overloaded(Exception):
    """A request refused because the queue is full (HTTP 429).

    Args:
        message: What was over which bound.
        retry_after: Seconds the client should wait before retrying.
        reason: `queue_texts` or `queue_tokens` (the metrics label).
    """

    def __init__(self, message: str, retry_after: int, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.reason = reason


class Admission:
    """Counts texts and tokens admitted and not yet answered, refusing past `max_texts` / `max_tokens`.

    Args:
        max_texts: Most texts waiting or being embedded (None: unbounded).
        max_tokens: Most tokens waiting or being embedded (None: unbounded).
        on_change: Called with (texts, tokens) whenever they change (metrics gauges).
    """

    def __init__(
        self,
        max_texts: int | None = None,
        max_tokens: int | None = None,
        on_change: Callable[[int, int], None] | None = None,
    ) -> None:
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.texts = 0
        self.tokens = 0
        self._on_change = on_change
        self._answered: deque[tuple[float, int]] = deque(maxlen=256)  # (time, texts) of recent answers

    def retry_after(self) -> int:
        """Seconds until the texts now waiting are likely answered (from recent throughput), 1 to 60."""
        now = time.monotonic()
        recent = [(at, texts) for at, texts in self._answered if now - at < 30]
        if len(recent) < 2 or self.texts == 0:
            return 1
        span = max(now - recent[0][0], 1e-3)
        rate = sum(texts for _, texts in recent) / span
        return max(1, min(60, math.ceil(self.texts / max(rate, 1e-3))))

    def admit(self, texts: int, tokens: int) -> None:
        """Reserve room for one request's texts and tokens.

        A request alone larger than a bound is admitted when nothing else is
        waiting (the per-request limits bound it), so no request is refused forever.

        Raises:
            Overloaded: Admitting it would pass a bound while others wait.
        """
        self.check(texts, tokens)
        self.texts += texts
        self.tokens += tokens
        self._changed()

    def check(self, texts: int, tokens: int = 0) -> None:
        """Refuse, without reserving, a request that `admit` would refuse now (e.g. before tokenizing it).

        Raises:
            Overloaded: Admitting it would pass a bound while others wait.
        """
        if self.texts > 0:
            if self.max_texts is not None and self.texts + texts > self.max_texts:
                raise Overloaded(
                    f"the server is busy: {self.texts} texts are waiting and this request's {texts} would pass "
                    f"its limit of {self.max_texts} (--max-queue); retry later",
                    self.retry_after(),
                    "queue_texts",
                )
            if self.max_tokens is not None and self.tokens + tokens > self.max_tokens:
                raise Overloaded(
                    f"the server is busy: {self.tokens} tokens are waiting and this request's {tokens} would pass "
                    f"its limit of {self.max_tokens} (--max-queue-tokens); retry later",
                    self.retry_after(),
                    "queue_tokens",
                )

    def release(self, texts: int, tokens: int, *, answered: bool) -> None:
        """Give back an admitted request's room once it is answered (or failed: `answered=False`)."""
        self.texts -= texts
        self.tokens -= tokens
        if answered:
            self._answered.append((time.monotonic(), texts))
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.texts, self.tokens)
