"""Resolve a model spec to a loaded base model and tokenizer.

A spec is a preset name (see `vaembed.models.registry`), a local `.gguf` file, a local
model folder, or a Hugging Face hub id. GGUF files are converted once into a
safetensors folder in the cache (transformers dequantises GGUF to full
precision, which takes tens of seconds); later loads read that folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaembed.cache import cache_dir, path_lock
from vaembed.models.registry import PRESETS, locate_parts

__all__ = [
    "ModelDigestError",
    "resolve_model_folder",
    "load_model_and_tokenizer",
    "load_causal_lm",
    "ModelSource",
    "pick_device",
    "pick_dtype",
    "read_config",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from.

    Attributes:
        spec: What the user passed.
        location: A local folder, or the hub id passed through to transformers.
        is_local: Whether `location` is a folder on disk.
    """

    spec: str
    location: str
    is_local: bool


class ModelDigestError(OSError):
    """Raised when a preset's assembled GGUF file does not have the digest its preset records."""


def _check_digest(name: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise ModelDigestError(
            f"{name}: sha256 {actual} does not match the expected {expected}; reinstall the model's packages"
        )


def _copy_verified(parts: Iterable[Path], target: Path, sha256: str | None) -> None:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as chunk_source:
                while block := chunk_source.read(1 << 24):
                    digest.update(block)
                    out.write(block)
    _check_digest(target.name, digest.hexdigest(), sha256)


def _verify(path: Path, sha256: str | None) -> None:
    """Check a whole-shipped GGUF file in place (no copy)."""
    if sha256 is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(1 << 24):
            digest.update(block)
    _check_digest(path.name, digest.hexdigest(), sha256)


def _convert_gguf(gguf_file: Path, target: Path) -> None:
    """Dequantise a GGUF file with transformers and save it as a safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("Converting %s once to %s (later loads read the converted folder)", gguf_file, target)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # A GGUF-loaded model refuses to serialise while it still names its quantiser,
    # although its weights are already dequantised to fp32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Written into a staging folder, renamed into place whole: a killed conversion leaves
    # only the staging folder, which the next conversion's lock holder removes.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_converted(target: Path) -> bool:
    return (target / "config.json").is_file()


def _converted_preset(name: str) -> Path:
    preset = PRESETS[name]
    target = cache_dir() / "models" / name
    if _is_converted(target):
        return target
    parts = locate_parts(preset)
    with path_lock(target):  # processes starting together convert once; the others wait, then read
        if _is_converted(target):
            return target
        shutil.rmtree(target, ignore_errors=True)  # never a finished conversion (it has no config.json)
        if len(parts) == 1:
            _verify(parts[0], preset.sha256)
            _convert_gguf(parts[0], target)
            return target
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as scratch:
            gguf_file = Path(scratch) / preset.gguf_name
            _copy_verified(parts, gguf_file, preset.sha256)
            _convert_gguf(gguf_file, target)
    return target


def _converted_gguf_file(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"{path.stem}-{key}"
    if _is_converted(target):
        return target
    with path_lock(target):
        if not _is_converted(target):
            shutil.rmtree(target, ignore_errors=True)
            _convert_gguf(path, target)
    return target


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device to load on: `device`, else the first of CUDA, MPS and XPU that torch has, else CPU."""
    if device is not None:
        return torch.device(device)
    for name in ("cuda", "mps", "xpu"):
        backend = getattr(torch, name, None) if name != "mps" else getattr(torch.backends, "mps", None)
        if backend is not None and backend.is_available():
            return torch.device(name)
    return torch.device("cpu")


HUB_OPTIONS = ("revision", "token", "cache_dir")
"""`model_kwargs` entries that say where the files come from; the tokenizer gets them too."""


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The parameter dtype: `dtype`, else bfloat16 on CUDA and float32 elsewhere.

    Raises:
        ValueError: `dtype` is not a known name, `"auto"` or a torch.dtype.
    """
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, 'auto' or a torch.dtype, not {dtype!r}")
    return _DTYPES[dtype]


def resolve_model_folder(spec: str | os.PathLike[str]) -> ModelSource:
    """Resolve a model spec to a local folder (converting GGUF once) or a hub id.

    Args:
        spec: A preset name, a `.gguf` file, a model folder, or a hub id.

    Returns:
        The model's source.

    Raises:
        PresetNotInstalledError: A preset's packages are missing.
        ModelDigestError: A preset's assembled file does not have its recorded sha256.
        FileNotFoundError: A path that looks local does not exist.
    """
    text = os.fspath(spec)
    if text in PRESETS:
        return ModelSource(text, str(_converted_preset(text)), True)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(text, str(_converted_gguf_file(path)), True)
    if path.is_dir():
        return ModelSource(text, str(path), True)
    if text.endswith(".gguf") or text.startswith((".", "/", "~")) or path.exists():
        raise FileNotFoundError(f"Model path {text!r} is not a .gguf file or a model folder")
    return ModelSource(text, text, False)


def read_config(source: ModelSource, trust_remote_code: bool = False, model_kwargs: dict | None = None) -> Any:
    """Read the model's config only (no weights), with the hub options of `model_kwargs`."""
    from transformers import AutoConfig

    hub = {name: value for name, value in (model_kwargs or {}).items() if name in HUB_OPTIONS}
    return AutoConfig.from_pretrained(source.location, trust_remote_code=trust_remote_code, **hub)


def load_model_and_tokenizer(
    source: ModelSource,
    *,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    model_kwargs: dict | None = None,
) -> tuple[torch.nn.Module, object]:
    """Load the base model (no LM head) and its tokenizer.

    Args:
        source: Where the weights are.
        device: Device to place the model on.
        dtype: Parameter dtype.
        trust_remote_code: Allow a checkpoint's own Python code; off unless the user sets it.
        model_kwargs: Extra keyword arguments for `AutoModel.from_pretrained`. With a
            `device_map` (e.g. `"auto"`, with offloading or quantised loading), the model
            stays where transformers placed it and `device` is not used; `revision`,
            `token` and `cache_dir` go to the tokenizer as well.

    Returns:
        The model in eval mode and its tokenizer.
    """
    from transformers import AutoModel, AutoTokenizer

    kwargs = {"trust_remote_code": trust_remote_code, **(model_kwargs or {})}
    hub = {name: kwargs[name] for name in HUB_OPTIONS if name in kwargs}
    tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code, **hub)
    model = AutoModel.from_pretrained(source.location, dtype=dtype, **kwargs)
    if kwargs.get("device_map") is None:  # a device map placed (and maybe offloaded) the weights already
        model.to(device)
    model.eval()
    return model, tokenizer


def load_causal_lm(
    model: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> tuple[torch.nn.Module, object]:
    """Load a model with its LM head, for generation, from any spec `Embedder.from_pretrained` takes.

    One copy can serve both generation and embeddings:
    `Embedder(lm.base_model, tokenizer, recipe, name=model)` reads the same weights.

    Args:
        model: A preset name, a `.gguf` file, a model folder or a hub id.
        device: Default CUDA when available, else CPU.
        dtype: Default bfloat16 on CUDA, float32 on CPU.
        trust_remote_code: Allow a checkpoint's own Python code.

    Returns:
        The causal LM in eval mode and its tokenizer.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_folder(model)
    target = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code)
    lm = AutoModelForCausalLM.from_pretrained(
        source.location, dtype=pick_dtype(dtype, target), trust_remote_code=trust_remote_code
    )
    lm.to(target)
    lm.eval()
    return lm, tokenizer
