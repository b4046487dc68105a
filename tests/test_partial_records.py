"""Merging partial quality records: rows of a group read again replace the old ones, mismatches are refused."""

from __future__ import annotations

import copy

import pytest

from benchmarks.partial_records import merge_partial


def record(groups: list[str], scores: dict[str, float], command: str) -> dict:
    return {
        "model": "m",
        "sizes": "small",
        "tasks": {"faq-retrieval": {"metric": "ndcg@10", "texts": 80}},
        "layers": {"kv": {"auto": [3, 4], "fallback": [5, 6]}},
        "num_layers": 8,
        "groups": groups,
        "scores": {name: {"faq-retrieval": value} for name, value in scores.items()},
        "passes": {group: {"seconds": 1.0, "tokens": 10} for group in groups},
        "sweep": {"va": {"faq-retrieval": [0.1]}} if "plain" in groups else {},
        "seconds": 10.0,
        "environment": {"command": command, "date": "2026-12-07"},
    }


def test_groups_accumulate_and_a_group_read_again_replaces_its_rows():
    old = record(["plain", "kv-auto"], {"hs-mean": 0.5, "kv@auto": 0.3}, "first")
    new = record(["kv-auto", "kv-fallback"], {"kv@auto": 0.4, "kv@fallback": 0.2}, "second")
    before = copy.deepcopy(old)
    merged = merge_partial(old, new)
    assert old == before  # the record on disk is not changed in memory either
    assert merged["groups"] == ["plain", "kv-auto", "kv-fallback"]
    assert {name: s["faq-retrieval"] for name, s in merged["scores"].items()} == {
        "hs-mean": 0.5,
        "kv@auto": 0.4,
        "kv@fallback": 0.2,
    }
    assert set(merged["passes"]) == {"plain", "kv-auto", "kv-fallback"}
    assert merged["sweep"] == old["sweep"]  # the second run did not read the plain pass
    assert merged["seconds"] == 20.0
    assert merged["environment"]["commands"] == ["first", "second"]
    again = merge_partial(merged, record(["echo"], {"echo": 0.6}, "third"))
    assert again["environment"]["commands"] == ["first", "second", "third"]


@pytest.mark.parametrize("field", ["model", "sizes", "layers", "tasks"])
def test_records_of_different_runs_are_not_merged(field):
    old = record(["plain"], {"hs-mean": 0.5}, "first")
    new = record(["echo"], {"echo": 0.6}, "second")
    new[field] = "other"
    with pytest.raises(ValueError, match=repr(field)):
        merge_partial(old, new)
