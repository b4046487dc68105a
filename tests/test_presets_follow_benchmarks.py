"""Each preset's default post-processing and layers, and the default recipe, follow the committed benchmark results.

The rule is `benchmarks.report_retrieval.choose_postprocess`: the corpus-free
variant (raw, centred, standardised) with the best mean over models of the
mean over tasks, among those not below raw on either retrieval task. It runs
here on every committed quality result that has post-processing rows (a
partial record, `partial-quality-*`, counts for the presets it scores), so a
new benchmark run that changes the choice fails this test until the preset follows. The layer and recipe rules are
`benchmarks.default_rules.choose_layers` and `recipe_ranking`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.default_rules import LAYER_RULE_PRESETS, TIE, choose_layers, recipe_ranking
from benchmarks.report_retrieval import PRESET_CONFIGS, choose_postprocess
from vaembed.recipes.presets import DEFAULT_RECIPE, PRESET_RECIPES

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"
MODE = {"raw": "none", "center": "center", "standardize": "standardize"}


def _records() -> list[dict]:
    """Every model record with post-processing rows, complete or partial (`--groups`).

    A partial record scores only the presets of the pass groups it read; each
    rule counts a record only for the configurations it scores.
    """
    paths = sorted(RESULTS.glob("quality-*.json")) + sorted(RESULTS.glob("partial-quality-*.json"))
    found = [json.loads(path.read_text()) for path in paths]
    return [r for r in found if "scores_standardize" in r and "scores_center" in r]


def test_results_with_post_processing_cover_four_models():
    assert len({record["model"] for record in _records()}) >= 4


@pytest.mark.parametrize("preset", sorted(PRESET_CONFIGS))
def test_preset_post_processing_is_the_benchmark_choice(preset):
    records = [r for r in _records() if PRESET_CONFIGS[preset] in r["scores"]]
    chosen, means = choose_postprocess(records, PRESET_CONFIGS[preset])
    assert PRESET_RECIPES[preset].postprocess == MODE[chosen], means


def test_every_preset_is_covered():
    assert set(PRESET_CONFIGS) == set(PRESET_RECIPES)


@pytest.mark.parametrize("preset", LAYER_RULE_PRESETS)
def test_preset_layers_are_the_benchmark_choice(preset):
    recipe = PRESET_RECIPES[preset]
    chosen, means = choose_layers(_records(), preset, recipe.postprocess)
    assert ("auto" if recipe.needs_calibration else "fallback") == chosen, means


def test_layer_rule_keeps_the_fallback_when_one_model_loses():
    def record(model: str, auto: float, fallback: float) -> dict:
        return {"model": model, "scores_center": {"va@auto": {"t": auto}, "va@fallback": {"t": fallback}}}

    assert choose_layers([record("a", 0.7, 0.6), record("b", 0.65, 0.6)], "va", "center")[0] == "auto"
    assert choose_layers([record("a", 0.9, 0.6), record("b", 0.59, 0.6)], "va", "center")[0] == "fallback"
    with pytest.raises(ValueError, match="va@auto"):
        choose_layers([{"model": "a", "scores_center": {}}], "va", "center")


def test_default_recipe_ties_for_the_best_retrieval_mean():
    configs = {name: (PRESET_CONFIGS[name], recipe.postprocess) for name, recipe in PRESET_RECIPES.items()}
    ranking = recipe_ranking(_records(), configs)
    assert set(ranking) == set(PRESET_RECIPES)
    assert ranking[DEFAULT_RECIPE] >= max(ranking.values()) - TIE, ranking
