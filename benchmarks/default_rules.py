"""The rules the presets' default layers and the default recipe follow, stated on the quality records.

Post-processing has its own rule (`benchmarks.report_retrieval.choose_postprocess`).
The two here:

- `choose_layers`: a calibrated preset reads the calibrated window
  (`layers="auto"`) by default only if, with the post-processing it ships, the
  calibrated window beats the fallback window on the mean over tasks on
  every model with a record; otherwise it keeps the fallback. `kv` is left
  out: its rerouted layers follow the KV-Embedding paper's procedure by
  design (benchmarks/README.md, "Why these defaults").
- `recipe_ranking`: each preset's mean over models of its mean over the two
  retrieval tasks, with its default layers and post-processing; the default
  recipe must be within `TIE` of the best.

Both read records in the shape `benchmarks.quality` writes, so
`tests/test_presets_follow_benchmarks.py` can check the library against the
committed results, and a new result that changes a choice fails that test
until the preset follows.
"""

from __future__ import annotations

from typing import Any

from benchmarks.report_retrieval import KEYS, RETRIEVAL_TASKS, _task_mean

__all__ = ["LAYER_RULE_PRESETS", "TIE", "choose_layers", "recipe_ranking"]

LAYER_RULE_PRESETS = ("va", "wva", "aligned-wva")
"""The calibrated presets whose default window `choose_layers` decides."""
TIE = 0.01
"""Retrieval means closer than this count as a tie for the default recipe."""
MODE_KEYS = {"none": "raw", "center": "center", "standardize": "standardize", None: "raw"}
"""A recipe's `postprocess` -> the record's variant name."""


def choose_layers(records: list[dict[str, Any]], preset: str, postprocess: str | None) -> tuple[str, dict[str, Any]]:
    """`"auto"` if the calibrated window wins on every record's task mean, else `"fallback"`.

    Args:
        records: Quality records that score both `<preset>@auto` and `<preset>@fallback`.
        preset: A preset of `LAYER_RULE_PRESETS`.
        postprocess: The post-processing the preset ships (`Recipe.postprocess`).

    Returns:
        The choice, and per model the two task means `(auto, fallback)`.

    Raises:
        ValueError: No record scores both windows of the preset.
    """
    variant = MODE_KEYS[postprocess]
    auto, fallback = f"{preset}@auto", f"{preset}@fallback"
    usable = [r for r in records if {auto, fallback} <= set(r[KEYS[variant]])]
    if not usable:
        raise ValueError(f"no record scores both {auto} and {fallback}")
    means = {r["model"]: (_task_mean(r, variant, auto), _task_mean(r, variant, fallback)) for r in usable}
    return ("auto" if all(a > f for a, f in means.values()) else "fallback"), means


def recipe_ranking(records: list[dict[str, Any]], configs: dict[str, tuple[str, str | None]]) -> dict[str, float]:
    """Each preset's mean over models of its retrieval mean, best first.

    Args:
        records: Quality records; a preset counts only on records that score its configuration.
        configs: Per preset, the configuration it runs by default (for example
            `"va@fallback"`) and its post-processing.

    Returns:
        Preset -> mean over the records that score it, sorted best first.
    """
    out = {}
    for preset, (config, postprocess) in configs.items():
        key = KEYS[MODE_KEYS[postprocess]]
        rows = [r[key][config] for r in records if config in r.get(key, {})]
        if rows:
            out[preset] = sum(sum(row[t] for t in RETRIEVAL_TASKS) / len(RETRIEVAL_TASKS) for row in rows) / len(rows)
    return dict(sorted(out.items(), key=lambda item: -item[1]))
