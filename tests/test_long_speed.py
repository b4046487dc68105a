"""`benchmarks/long_speed.py` on a tiny model: every cell timed against the bare forward, and its table."""

from __future__ import annotations

import json

import pytest

from benchmarks import long_speed


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))


def test_every_cell_is_timed_against_the_bare_forward_and_tabulated(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "long.json"
    argv = ["--model", str(tiny_model_folder), "--presets", "va", "kv", "--lengths", "64", "160"]
    record = long_speed.main(
        [*argv, "--max-length", "200", "--window", "96", "--repeats", "2", "--corpus", "synthetic", "--out", str(out)]
    )
    assert json.loads(out.read_text()) == record
    assert record["command"][:3] == ["python", "-m", "benchmarks.long_speed"]
    for policy in ("truncate", "chunk"):
        for preset in ("va", "kv"):
            cell = record["policies"][policy][preset]
            for length in ("64", "160"):
                row = cell["rows"][length]
                assert len(row["engine_s"]) == len(row["bare_s"]) == 2 and min(row["engine_s"] + row["bare_s"]) > 0
                assert row["vs_bare"] == pytest.approx(row["bare_median_s"] / row["engine_median_s"])
            assert cell["rows"]["64"]["sequences"] == 1
            assert (cell["rows"]["160"]["sequences"] > 1) == (policy == "chunk")  # chunk: several windows
    table = long_speed.render_markdown(record)
    assert table in capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| truncate") or line.startswith("| chunk")]
    assert len(rows) == 4
    last = record["policies"]["chunk"]["kv"]["rows"]["160"]
    assert rows[-1].startswith("| chunk | kv |")
    assert rows[-1].endswith(f"| {last['vs_bare']:.2f}x ({last['engine_median_s']:.1f} s) |")


def test_render_prints_an_earlier_runs_table(tmp_path, capsys):
    row = {"bare_median_s": 2.0, "engine_median_s": 1.6}
    record = {
        "settings": {"lengths": [512, 4096]},
        "policies": {"chunk": {"va": {"layers": list(range(15, 30)), "rows": {"512": row}},
                               "kv": {"layers": [3, 9], "rows": {"512": row, "4096": row}}}},
    }  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    assert long_speed.main(["--render", str(path)]) == record
    out = capsys.readouterr().out
    assert "| chunk | va | 15-29 | 1.25x (1.6 s) | - |" in out
    assert "| chunk | kv | 3, 9 | 1.25x (1.6 s) | 1.25x (1.6 s) |" in out


def test_render_merges_runs_of_one_model_into_one_table(tmp_path, capsys):
    fast, slow = {"bare_median_s": 2.0, "engine_median_s": 1.6}, {"bare_median_s": 1.0, "engine_median_s": 2.0}
    first = {
        "model": "m",
        "settings": {"lengths": [512, 4096]},
        "policies": {"truncate": {"va": {"layers": [5, 6, 7], "rows": {"512": slow, "4096": fast}}}},
    }
    second = {
        "model": "m",
        "settings": {"lengths": [1024, 512]},
        "policies": {"truncate": {"va": {"layers": [5, 6, 7], "rows": {"512": fast, "1024": slow}},
                                  "kv": {"layers": [2], "rows": {"1024": fast}}}},
    }  # fmt: skip
    paths = []
    for index, record in enumerate((first, second)):
        paths.append(tmp_path / f"run{index}.json")
        paths[-1].write_text(json.dumps(record))
    merged = long_speed.main(["--render", *map(str, paths)])
    assert merged["settings"]["lengths"] == [512, 1024, 4096]
    out = capsys.readouterr().out
    assert "| policy | preset | layers | 512 tokens | 1024 tokens | 4096 tokens |" in out
    # the later run's 512 row wins
    assert "| truncate | va | 5-7 | 1.25x (1.6 s) | 0.50x (2.0 s) | 1.25x (1.6 s) |" in out
    assert "| truncate | kv | 2 | - | 1.25x (1.6 s) | - |" in out
    assert first["policies"]["truncate"]["va"]["rows"]["512"] is slow  # inputs untouched


def test_render_refuses_to_merge_runs_of_different_models_or_layers():
    run = {"model": "a", "settings": {"lengths": [512]}, "policies": {"truncate": {"va": {"layers": [1], "rows": {}}}}}
    with pytest.raises(ValueError, match="one model"):
        long_speed.merge_records([run, {**run, "model": "b"}])
    other_layers = {**run, "policies": {"truncate": {"va": {"layers": [2], "rows": {}}}}}
    with pytest.raises(ValueError, match=r"truncate va ran with layers \[1\] and \[2\]"):
        long_speed.merge_records([run, other_layers])
