"""vaembed's cache folder, and atomic writes into it.

Converted models, calibration profiles and embedding statistics live under
`cache_dir()`; every file there is written atomically (`atomic_file`), so a
reader sees the old file or the whole new one, never a part. Whatever is
computed once per cache entry (a model conversion, a calibration profile,
embedding statistics) is computed under `path_lock`, an inter-process lock
keyed by the entry's path: processes that start together compute it once,
and the others wait and read the result. The lock's holder first removes what
a killed writer may have left next to the entry (`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from filelock import FileLock

__all__ = ["CACHE_ENV", "atomic_file", "cache_dir", "path_lock", "remove_leftovers"]

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


def remove_leftovers(path: str | os.PathLike[str]) -> int:
    """Remove the temporary files and staging folders that writers of `path` leave if killed.

    Those are `.<name>.*.tmp` files (`atomic_file`) and `.<name>-*` folders (model
    conversions) next to `path`. Call it only while holding `path_lock(path)`,
    so no live writer's file is removed.

    Returns:
        How many were removed.
    """
    target = Path(path)
    pattern = glob.escape(str(target.parent / f".{target.name}"))
    removed = 0
    for leftover in glob.glob(pattern + ".*.tmp") + glob.glob(pattern + "-*"):
        if os.path.isdir(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            Path(leftover).unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def path_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an inter-process lock keyed by `path` (the file `.<name>.lock` next to it).

    Processes (and threads) that lock one path run their bodies one at a time;
    the lock is released when its holder ends, killed or not. On entry the
    leftovers of killed writers are removed (`remove_leftovers`). Do not nest
    two locks on one path in one thread: the inner one would wait forever.

    Args:
        path: The cache entry (a file or a folder) to be written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        remove_leftovers(target)
        yield
