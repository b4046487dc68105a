"""One re-entrant lock per model and per tokenizer, shared by everything that uses them.

Fast tokenizers are not safe to call from several threads at once, and
interleaved forward passes on one CPU only compete for its cores. The engine
holds a tokenizer's lock while it tokenizes and a model's lock during each
forward pass, so threads and coroutines may share an embedder (or several
embedders may share a model): calls interleave batch by batch and each returns
exactly what it would return alone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["lock_for"]

_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def lock_for(resource: Any) -> threading.RLock:
    """Return the one lock that guards `resource` (a model or a tokenizer), created on first use."""
    with _GUARD:
        lock = _LOCKS.get(resource)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[resource] = lock
        return lock
