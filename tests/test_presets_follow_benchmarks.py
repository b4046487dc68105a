"""Each preset's default post-processing is the one the committed benchmark results choose.

The rule is `benchmarks.report_retrieval.choose_postprocess`: the corpus-free
variant (raw, centred, standardised) with the best mean over models of the
mean over tasks, among those not below raw on either retrieval task. It runs
here on every committed quality result that has post-processing rows, so a new
benchmark run that changes the choice fails this test until the preset follows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report_retrieval import PRESET_CONFIGS, choose_postprocess
from vaembed.recipes.presets import PRESET_RECIPES

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"
MODE = {"raw": "none", "center": "center", "standardize": "standardize"}


def _records() -> list[dict]:
    found = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("quality-*.json"))]
    return [r for r in found if "scores_standardize" in r and "scores_center" in r]


def test_results_with_post_processing_cover_two_models_or_more():
    assert len({record["model"] for record in _records()}) >= 2


@pytest.mark.parametrize("preset", sorted(PRESET_CONFIGS))
def test_preset_post_processing_is_the_benchmark_choice(preset):
    records = [r for r in _records() if PRESET_CONFIGS[preset] in r["scores"]]
    chosen, means = choose_postprocess(records, PRESET_CONFIGS[preset])
    assert PRESET_RECIPES[preset].postprocess == MODE[chosen], means


def test_every_preset_is_covered():
    assert set(PRESET_CONFIGS) == set(PRESET_RECIPES)
