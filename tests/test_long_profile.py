"""`benchmarks/long_profile.py` on a tiny model: both sides profiled op by op, and the tables."""

from __future__ import annotations

import json

import pytest

from benchmarks import long_profile


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("preset", ["va", "kv"])
def test_engine_and_bare_forward_run_the_same_matmuls(tiny_model_folder, tmp_path, preset, capsys):
    out = tmp_path / "profile.json"
    argv = ["--model", str(tiny_model_folder), "--preset", preset, "--policy", "chunk", "--length", "160"]
    record = long_profile.main([*argv, "--window", "96", "--rounds", "2", "--corpus", "synthetic", "--out", str(out)])
    assert json.loads(out.read_text()) == record
    assert record["command"][:3] == ["python", "-m", "benchmarks.long_profile"] and len(record["rounds"]) == 2
    for entry in record["rounds"]:
        assert entry["vs_bare"] == pytest.approx(entry["bare_s"] / entry["engine_s"])
        assert 0 < len(entry["ops"]) <= long_profile.TOP
        projections = entry["ops"]["aten::mm"]
        # every linear layer runs once per token batch on both sides, several windows each
        assert projections["bare"]["calls"] == projections["engine"]["calls"] > 0
        assert min(projections["bare"]["self_s"], projections["engine"]["self_s"]) > 0
    table = long_profile.render_markdown(record)
    assert table in capsys.readouterr().out
    first = record["rounds"][0]["ops"]["aten::mm"]
    assert f"| aten::mm | {first['bare']['calls']} | {first['engine']['calls']} |" in table


def test_top_ops_ranks_by_either_sides_self_time_and_fills_missing_ones():
    bare = {"a": {"calls": 2, "self_s": 1.0}, "b": {"calls": 1, "self_s": 0.1}}
    engine = {"a": {"calls": 2, "self_s": 1.2}, "c": {"calls": 3, "self_s": 2.0}}
    ranked = long_profile.top_ops(bare, engine)
    assert list(ranked) == ["c", "a", "b"]
    assert ranked["c"]["bare"] == {"calls": 0, "self_s": 0.0} and ranked["b"]["engine"]["calls"] == 0
