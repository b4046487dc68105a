"""The named methods of METHODS.md as recipes, and the default recipe.

| preset | prompt | intervention | readout | layers | post-processing |
|---|---|---|---|---|---|
| `hs-mean` | none | none | hidden_mean | final | standardize |
| `hs-last` | none | none | hidden_last | final | standardize |
| `prompteol` | prompteol | none | hidden_last | final | standardize |
| `echo` | echo | none | hidden_mean (2nd copy) | final | standardize |
| `token-prepending` | prompteol + placeholder | token prepending (early layers) | hidden_last | final | standardize |
| `va` | none | none | value_mean | fallback | standardize |
| `wva` | none | none | value_weighted | fallback | standardize |
| `aligned-wva` | prompteol | none | attention_last | fallback | standardize |
| `kv` | compress | KV reroute (auto, bias 1.0) | hidden_hybrid | final | standardize |

Each preset's post-processing is the benchmarks' choice
(`benchmarks.report_retrieval.choose_postprocess` on the committed results;
`tests/test_presets_follow_benchmarks.py` checks it). `postprocess="none"`
gives the methods' raw vectors.
"""

from __future__ import annotations

from vaembed.recipes.interventions import KVReroute, TokenPrepending
from vaembed.recipes.layers import AUTO
from vaembed.recipes.prompts import PROMPTS
from vaembed.recipes.readouts import READOUTS
from vaembed.recipes.recipe import Recipe

__all__ = ["CALIBRATED_PRESETS", "DEFAULT_RECIPE", "PRESET_RECIPES", "get_recipe"]

DEFAULT_RECIPE = "hs-mean"
"""The recipe used when none is named: the best mean over the two retrieval tasks across the
benchmarked models (`benchmarks.default_rules.recipe_ranking`; benchmarks/README.md, "Why these defaults")."""

PRESET_RECIPES: dict[str, Recipe] = {
    "hs-mean": Recipe(PROMPTS["none"], READOUTS["hidden_mean"], "final", name="hs-mean", postprocess="standardize"),
    "hs-last": Recipe(PROMPTS["none"], READOUTS["hidden_last"], "final", name="hs-last", postprocess="standardize"),
    "prompteol": Recipe(
        PROMPTS["prompteol"], READOUTS["hidden_last"], "final", name="prompteol", postprocess="standardize"
    ),
    "echo": Recipe(PROMPTS["echo"], READOUTS["hidden_mean"], "final", name="echo", postprocess="standardize"),
    "token-prepending": Recipe(
        PROMPTS["token-prepending"],
        READOUTS["hidden_last"],
        "final",
        TokenPrepending(),
        name="token-prepending",
        postprocess="standardize",
    ),
    "va": Recipe(PROMPTS["none"], READOUTS["value_mean"], "fallback", name="va", postprocess="standardize"),
    "wva": Recipe(PROMPTS["none"], READOUTS["value_weighted"], "fallback", name="wva", postprocess="standardize"),
    "aligned-wva": Recipe(
        PROMPTS["prompteol"], READOUTS["attention_last"], "fallback", name="aligned-wva", postprocess="standardize"
    ),
    "kv": Recipe(
        PROMPTS["compress"],
        READOUTS["hidden_hybrid"],
        "final",
        KVReroute(layers=AUTO),
        name="kv",
        postprocess="standardize",
    ),
}

#: Presets whose layer set calibration can choose (`layers="auto"`); the profile
#: holds a set for each. Only `kv` uses it by default (the KV-Embedding paper's
#: procedure). `va`, `wva` and `aligned-wva` read the METHODS fallback
#: `[L//2, L)`: the calibrated window beats it on the three models under 1B
#: parameters but loses on qwen2.5-coder-1.5b (`benchmarks.default_rules.choose_layers`;
#: benchmarks/README.md, "Why these defaults"). Pass `layers="auto"` for the calibrated one.
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
