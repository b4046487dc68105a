"""Partial quality records that grow by pass group across runs.

A model too slow to benchmark in one sitting is read a few pass groups at a time:

    python -m benchmarks.quality --models qwen2.5-coder-1.5b --sizes small --groups plain prompteol
    python -m benchmarks.quality --models qwen2.5-coder-1.5b --sizes small --groups kv-auto kv-fallback

Each run writes `partial-quality-<model>-<sizes>.json`; when that file already
holds a record of the same model, sizes, tasks and layers, the new groups are
merged into it rather than written over it. Rows of a group read again replace
the old ones; every run's command stays in the record.
"""

from __future__ import annotations

from typing import Any

PER_CONFIG = (
    "scores",
    "scores_center",
    "scores_standardize",
    "scores_task_standardize",
    "engine_check",
    "hybrid",
    "hubness",
    "passes",
)
"""Keys holding one entry per configuration or pass group: merged entry by entry."""
MUST_MATCH = ("model", "sizes", "tasks", "layers", "num_layers")
"""What makes two records rows of one table."""
FROM_BOTH_GROUPS = ("lexical", "combined", "sweep")
"""Experiments that need the plain and PromptEOL groups: kept from whichever run had them."""


def merge_partial(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One record with the pass groups of both runs.

    Args:
        old: the record already on disk.
        new: the record of the run that just finished.

    Returns:
        A new record; neither argument is changed.

    Raises:
        ValueError: naming the first field (model, sizes, tasks, layers) in which the runs differ.
    """
    for key in MUST_MATCH:
        if old.get(key) != new.get(key):
            raise ValueError(
                f"cannot merge partial quality records: {key!r} differs ({old.get(key)!r} on disk, "
                f"{new.get(key)!r} in this run); write this run elsewhere with --out"
            )
    merged = {**old, **new}
    for key in PER_CONFIG:
        merged[key] = {**old.get(key, {}), **new.get(key, {})}
    merged["groups"] = list(dict.fromkeys([*old.get("groups", []), *new.get("groups", [])]))
    for key in FROM_BOTH_GROUPS:
        merged[key] = new[key] if new.get(key) else old.get(key, {})
    merged["bias_sweep"] = new.get("bias_sweep") or old.get("bias_sweep", {})
    merged["seconds"] = round(old.get("seconds", 0.0) + new.get("seconds", 0.0), 1)
    merged["environment"] = {**new["environment"], "commands": [*commands(old), new["environment"]["command"]]}
    return merged


def commands(record: dict[str, Any]) -> list[str]:
    """Every command that contributed to a record, oldest first."""
    environment = record.get("environment", {})
    return list(environment.get("commands", [environment["command"]] if "command" in environment else []))
