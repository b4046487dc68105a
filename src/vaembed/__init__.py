"""vaembed: training-free text embeddings from frozen decoder-only LLMs.

A recipe is prompt x intervention x readout x layers (`vaembed.recipes`); the
engine runs it on any supported Hugging Face causal LM (`vaembed.engine`);
layer calibration chooses layers by intrinsic dimension (`vaembed.calibration`);
`Embedder` puts them together; `vaembed.connectors` holds the Chroma, Ray,
mteb and server connectors and `vaembed.cli` the command line.
"""

from __future__ import annotations

import warnings
from typing import Any

from vaembed import deprecations
from vaembed.calibration import CalibrationProfile, ProfileError, load_dev_set, quantize_embeddings, sweep_layers
from vaembed.embedder import Embedder
from vaembed.models import DEFAULT_MODEL, PRESETS, PresetNotInstalledError, load_causal_lm
from vaembed.recipes import (
    DEFAULT_RECIPE,
    INTERVENTIONS,
    PRESET_RECIPES,
    PROMPTS,
    READOUTS,
    AttentionOutput,
    HiddenStates,
    Intervention,
    KVReroute,
    Prompt,
    Readout,
    Recipe,
    TokenPrepending,
    ValueVectors,
    WeightedValues,
    register_intervention,
    register_readout,
)
from vaembed.version import __version__

deprecations.install()

__all__ = [
    "CalibrationProfile",
    "ProfileError",
    "load_dev_set",
    "sweep_layers",
    "quantize_embeddings",
    "load_causal_lm",
    "DEFAULT_MODEL",
    "DEFAULT_RECIPE",
    "Embedder",
    "INTERVENTIONS",
    "AttentionOutput",
    "HiddenStates",
    "Intervention",
    "KVReroute",
    "PRESETS",
    "PRESET_RECIPES",
    "PROMPTS",
    "PresetNotInstalledError",
    "Prompt",
    "READOUTS",
    "Readout",
    "Recipe",
    "TokenPrepending",
    "ValueVectors",
    "WeightedValues",
    "register_intervention",
    "register_readout",
    "__version__",
]

_MOVED_NAMES = {"ndcg_at_10": "vaembed.calibration.devset", "spearman": "vaembed.calibration.devset"}


def __getattr__(name: str) -> Any:
    if name in _MOVED_NAMES:
        warnings.warn(
            f"vaembed.{name} moved to {_MOVED_NAMES[name]}.{name}; the old name goes in vaembed 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        import importlib

        return getattr(importlib.import_module(_MOVED_NAMES[name]), name)
    raise AttributeError(f"module 'vaembed' has no attribute {name!r}")
