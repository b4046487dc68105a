"""The named methods of METHODS.md as recipes, and the default recipe.

| preset | prompt | intervention | readout | layers |
|---|---|---|---|---|
| `hs-mean` | none | none | hidden_mean | final |
| `hs-last` | none | none | hidden_last | final |
| `prompteol` | prompteol | none | hidden_last | final |
| `echo` | echo | none | hidden_mean (2nd copy) | final |
| `token-prepending` | prompteol + placeholder | token prepending (early layers) | hidden_last | final |
| `va` | none | none | value_mean | fallback |
| `wva` | none | none | value_weighted | fallback |
| `aligned-wva` | prompteol | none | attention_last | fallback |
| `kv` | compress | KV reroute (auto, bias 1.0) | hidden_hybrid | final |
"""

from __future__ import annotations

from vaembed.recipes.interventions import KVReroute, TokenPrepending
from vaembed.recipes.layers import AUTO
from vaembed.recipes.prompts import PROMPTS
from vaembed.recipes.readouts import READOUTS
from vaembed.recipes.recipe import Recipe

__all__ = ["CALIBRATED_PRESETS", "DEFAULT_RECIPE", "PRESET_RECIPES", "get_recipe"]

DEFAULT_RECIPE = "va"
"""The recipe used when none is named (best mean over tasks and models: benchmarks/README.md)."""

PRESET_RECIPES: dict[str, Recipe] = {
    "hs-mean": Recipe(PROMPTS["none"], READOUTS["hidden_mean"], "final", name="hs-mean"),
    "hs-last": Recipe(PROMPTS["none"], READOUTS["hidden_last"], "final", name="hs-last"),
    "prompteol": Recipe(PROMPTS["prompteol"], READOUTS["hidden_last"], "final", name="prompteol"),
    "echo": Recipe(PROMPTS["echo"], READOUTS["hidden_mean"], "final", name="echo"),
    "token-prepending": Recipe(
        PROMPTS["token-prepending"], READOUTS["hidden_last"], "final", TokenPrepending(), name="token-prepending"
    ),
    "va": Recipe(PROMPTS["none"], READOUTS["value_mean"], "fallback", name="va"),
    "wva": Recipe(PROMPTS["none"], READOUTS["value_weighted"], "fallback", name="wva"),
    "aligned-wva": Recipe(PROMPTS["prompteol"], READOUTS["attention_last"], "fallback", name="aligned-wva"),
    "kv": Recipe(PROMPTS["compress"], READOUTS["hidden_hybrid"], "final", KVReroute(layers=AUTO), name="kv"),
}

#: Presets whose layer set calibration can choose (`layers="auto"`); the profile
#: holds a set for each. `kv` uses it by default. The readouts `va`, `wva` and
#: `aligned-wva` default to the METHODS fallback window `[L//2, L)`, which scored
#: better than the calibrated window in the benchmarks (benchmarks/README.md);
#: pass `layers="auto"` for the calibrated one.
CALIBRATED_PRESETS = ("va", "wva", "aligned-wva", "kv")


def get_recipe(recipe: str | Recipe) -> Recipe:
    """Return a preset by name, or the recipe itself.

    Raises:
        ValueError: An unknown preset name (the presets are listed).
    """
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in PRESET_RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; presets are {', '.join(PRESET_RECIPES)}")
    return PRESET_RECIPES[recipe]
