"""Model options as a saved config stores them, so it reopens on another machine.

A persisted config (a Chroma collection's embedding function, for one) must
name the model in a way another machine understands, and keep no setting
that only made sense where it was written:

- a path inside vaembed's cache that holds a converted preset
  (`$VAEMBED_CACHE/models/<preset>`) is stored as the preset's name, which
  the other machine converts into its own cache;
- a Hugging Face hub snapshot folder (`.../models--org--name/snapshots/<sha>`)
  is stored as the hub id `org/name`, with the snapshot as its `revision`;
- any other path inside vaembed's cache (a converted `.gguf` file) is stored
  relative to the cache, as `vaembed-cache:<relative path>`, and
  `local_model` reads it back inside the current cache;
- a preset name, a hub id and any other local path stay as given.

`portable_model_kwargs` drops the loading options that say where files or
weights live on one machine (device maps, offload folders, hub cache
folders, tokens) and keeps those that change the weights (`revision`, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vaembed.cache import cache_dir
from vaembed.models.registry import PRESETS

__all__ = ["CACHE_REFERENCE", "MACHINE_OPTIONS", "local_model", "portable_model", "portable_model_kwargs"]

CACHE_REFERENCE = "vaembed-cache:"
"""Prefix of a stored model path that is relative to vaembed's cache folder."""

MACHINE_OPTIONS = frozenset(
    {
        *("device_map", "max_memory", "offload_folder", "offload_state_dict", "offload_buffers"),
        *("cache_dir", "token", "local_files_only", "force_download", "proxies"),
    }
)
"""`model_kwargs` entries that say where things live on one machine (or hold a secret): never stored."""


def _inside(path: Path, folder: Path) -> Path | None:
    """`path` relative to `folder`, or None when it is not inside it."""
    try:
        return path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return None


def _hub_snapshot(path: Path) -> tuple[str, str] | None:
    """`(hub id, revision)` of a Hugging Face hub cache snapshot folder, else None."""
    parts = path.parts
    if len(parts) < 3 or parts[-2] != "snapshots" or not parts[-3].startswith("models--"):
        return None
    owner_and_name = parts[-3][len("models--") :]
    if not owner_and_name:
        return None
    return owner_and_name.replace("--", "/", 1), parts[-1]


def portable_model(name: str) -> tuple[str, str | None]:
    """The model spec a saved config stores for `name`, and the hub revision it pins (or None).

    Args:
        name: The spec the model was loaded from (an `Embedder`'s `name`).

    Returns:
        `(spec, revision)`: see the module docstring for the rules.
    """
    text = os.fspath(name)
    if text in PRESETS or text.startswith(CACHE_REFERENCE):
        return text, None
    path = Path(text).expanduser()
    snapshot = _hub_snapshot(path)
    if snapshot is not None:
        return snapshot
    relative = _inside(path, cache_dir()) if path.is_absolute() or path.exists() else None
    if relative is None or not relative.parts:
        return text, None
    if len(relative.parts) == 2 and relative.parts[0] == "models" and relative.parts[1] in PRESETS:
        return relative.parts[1], None
    return CACHE_REFERENCE + relative.as_posix(), None


def local_model(spec: str) -> str:
    """The spec to load a stored model from on this machine (a cache reference becomes a path in this cache)."""
    if spec.startswith(CACHE_REFERENCE):
        return str(cache_dir() / spec[len(CACHE_REFERENCE) :])
    return spec


def portable_model_kwargs(model_kwargs: dict[str, Any], revision: str | None = None) -> dict[str, Any]:
    """`model_kwargs` without `MACHINE_OPTIONS`, with `revision` added unless one is set."""
    kept = {key: value for key, value in model_kwargs.items() if key not in MACHINE_OPTIONS}
    if revision is not None:
        kept.setdefault("revision", revision)
    return kept
