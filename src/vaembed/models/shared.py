"""One loaded model per process, shared by every embedder that asks for it.

Adapters (LangChain, LlamaIndex, Chroma, the server) build an `Embedder` per
object users create; loading the weights once per object would multiply memory
and start-up time. `load_shared` keys loaded models by what decides their
weights (resolved location, device, dtype, loading options) and keeps them only
while some embedder still holds them (weak references), so dropping the last
embedder frees the model.

Threads may share what this hands out: the engine guards each model and
tokenizer with one lock (`vaembed.engine.locks`).
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from vaembed.models.loading import (
    ModelSource,
    load_model_and_tokenizer,
    pick_device,
    pick_dtype,
    read_config,
    resolve_model_folder,
)

__all__ = ["LoadedModel", "load_model", "load_shared", "loaded_count"]


@dataclass(eq=False)
class LoadedModel:
    """A loaded base model and its tokenizer, as the cache hands them out.

    Attributes:
        model: The base model in eval mode.
        tokenizer: Its tokenizer.
        key: What it was loaded from and how (see `load_shared`).
    """

    model: torch.nn.Module
    tokenizer: Any
    key: tuple


_LOADED: weakref.WeakValueDictionary[tuple, LoadedModel] = weakref.WeakValueDictionary()
_LOADING = threading.Lock()


def _cache_key(
    source: ModelSource, device: torch.device, dtype: torch.dtype, trust_remote_code: bool, model_kwargs: dict | None
) -> tuple:
    options = tuple(sorted((str(name), repr(value)) for name, value in (model_kwargs or {}).items()))
    return (source.location, str(device), str(dtype), bool(trust_remote_code), options)


def load_shared(
    source: ModelSource,
    *,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    model_kwargs: dict | None = None,
) -> LoadedModel:
    """Return the process's loaded copy of a model, loading it on first use.

    Two calls with the same resolved location, device, dtype and loading
    options get the same objects. Loads are serialised, so threads that ask
    for one model at once load it once.

    Args:
        source: Where the weights are.
        device: Device to place the model on.
        dtype: Parameter dtype.
        trust_remote_code: Allow a checkpoint's own Python code.
        model_kwargs: Extra arguments for `AutoModel.from_pretrained` (part of
            the key by their `repr`).
    """
    key = _cache_key(source, device, dtype, trust_remote_code, model_kwargs)
    with _LOADING:
        loaded = _LOADED.get(key)
        if loaded is None:
            model, tokenizer = load_model_and_tokenizer(
                source, device=device, dtype=dtype, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs
            )
            loaded = LoadedModel(model, tokenizer, key)
            _LOADED[key] = loaded
        return loaded


def load_model(
    spec: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    model_kwargs: dict | None = None,
    share: bool = True,
    supported: tuple[str, ...] | None = None,
) -> tuple[torch.nn.Module, Any, LoadedModel | None]:
    """Resolve a model spec and load it: the process's shared copy (`share`) or a private one.

    Args:
        spec: A preset name, a `.gguf` file, a model folder or a hub id.
        device: Default the first of CUDA, MPS and XPU that torch has, else CPU.
        dtype: Default bfloat16 on CUDA, float32 elsewhere.
        trust_remote_code: Allow a checkpoint's own Python code.
        model_kwargs: Extra arguments for `AutoModel.from_pretrained`.
        share: Return the process's shared copy (else a private one).
        supported: The model types that may load; the model's config is read first and any
            other architecture is refused before a weight is loaded.

    Returns:
        The base model, its tokenizer, and the shared entry to keep alive (None for a private copy).

    Raises:
        ValueError: The config names an architecture outside `supported` (those are named).
    """
    source = resolve_model_folder(spec)
    if supported is not None:
        model_type = read_config(source, trust_remote_code, model_kwargs).model_type
        if model_type not in supported:
            raise ValueError(f"Unsupported architecture {model_type!r}: vaembed supports {', '.join(supported)}")
    target = pick_device(device)
    options = dict(
        device=target, dtype=pick_dtype(dtype, target), trust_remote_code=trust_remote_code, model_kwargs=model_kwargs
    )
    if share:
        shared = load_shared(source, **options)
        return shared.model, shared.tokenizer, shared
    model, tokenizer = load_model_and_tokenizer(source, **options)
    return model, tokenizer, None


def loaded_count() -> int:
    """Return how many shared models are alive in this process."""
    return len(_LOADED)
