"""vaembed: training-free text embeddings from frozen decoder-only LLMs."""

from __future__ import annotations

from vaembed.calibration import CalibrationProfile, ProfileError, load_dev_set, sweep_layers
from vaembed.calibration.devset import ndcg_at_10, spearman
from vaembed.embedder import DEFAULT_RECIPE, Embedder
from vaembed.loading import load_causal_lm
from vaembed.prompts import PROMPTS, Prompt
from vaembed.recipe import PRESET_RECIPES, READOUTS, KVReroute, Readout, Recipe, TokenPrepending
from vaembed.registry import DEFAULT_MODEL, PRESETS, PresetNotInstalledError
from vaembed.version import __version__

__all__ = [
    "CalibrationProfile",
    "ProfileError",
    "load_dev_set",
    "sweep_layers",
    "load_causal_lm",
    "ndcg_at_10",
    "spearman",
    "DEFAULT_MODEL",
    "DEFAULT_RECIPE",
    "Embedder",
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
    "__version__",
]
