"""vaembed's cache folder, and atomic writes into it.

Converted models, calibration profiles and embedding statistics live under
`cache_dir()`; every file there is written atomically (`atomic_file`), so a
reader sees the old file or the whole new one, never a part.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["CACHE_ENV", "atomic_file", "cache_dir"]

CACHE_ENV = "VAEMBED_CACHE"


def cache_dir() -> Path:
    """Return the cache folder: `$VAEMBED_CACHE`, else `$XDG_CACHE_HOME/vaembed`, else `~/.cache/vaembed`."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vaembed"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success rename it over `path`.

    The parent folder is created. If the body raises, the temporary file is
    removed and `path` is left as it was.

    Args:
        path: The target file.
        mode: `"w"` (UTF-8 text) or `"wb"`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
