"""Recipes: prompt x intervention x readout x layers, and the named presets.

- `prompts`: role-aware templates and which tokens pooling reads;
- `interventions`: changes to the forward pass (KV rerouting, token prepending);
- `readouts`: what is read from the pass, how it is pooled, its dimension;
- `layers`: layer specs and how they resolve for a model;
- `recipe`: the four parts composed; `presets`: the named methods.
"""

from __future__ import annotations

from vaembed.recipes.interventions import INTERVENTIONS, Intervention, KVReroute, TokenPrepending, register_intervention
from vaembed.recipes.layers import AUTO, LayerSpec, resolve_layers, window_width
from vaembed.recipes.pooling import Pooling, TokenPositions
from vaembed.recipes.presets import CALIBRATED_PRESETS, DEFAULT_RECIPE, PRESET_RECIPES, get_recipe
from vaembed.recipes.prompts import PROMPTS, Prompt, Role
from vaembed.recipes.readouts import (
    READOUTS,
    AttentionOutput,
    HiddenStates,
    Readout,
    ValueVectors,
    WeightedValues,
    get_readout,
    register_readout,
)
from vaembed.recipes.recipe import Recipe, ResolvedRecipe

__all__ = [
    "AUTO",
    "CALIBRATED_PRESETS",
    "DEFAULT_RECIPE",
    "INTERVENTIONS",
    "PRESET_RECIPES",
    "PROMPTS",
    "READOUTS",
    "AttentionOutput",
    "HiddenStates",
    "Intervention",
    "KVReroute",
    "LayerSpec",
    "Pooling",
    "Prompt",
    "Readout",
    "Recipe",
    "ResolvedRecipe",
    "Role",
    "TokenPositions",
    "TokenPrepending",
    "ValueVectors",
    "WeightedValues",
    "get_readout",
    "get_recipe",
    "register_intervention",
    "register_readout",
    "resolve_layers",
    "window_width",
]
