"""The speed benchmark end to end on a tiny random model (offline, synthetic texts, one round, short documents)."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import report as benchmark_report
from benchmarks import speed
from benchmarks.speed_runner import exact_token_text, synthetic_texts
from vaembed.recipes.presets import DEFAULT_RECIPE
from vaembed.testing import build_tokenizer

pytest.importorskip("sentence_transformers")
pytest.importorskip("psutil")

PRESETS = ["hs-mean", "kv"]  # the default recipe, and kv, the one preset that reads calibrated layers by default
LENGTHS = [64, 128]


@pytest.fixture(scope="module")
def run(tiny_model_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed") / "speed.json"
    argv = ["--models", str(tiny_model_folder), "--presets", *PRESETS, "--texts", "24", "--corpus", "synthetic"]
    argv += ["--rounds", "1", "--warmup", "4", "--lengths", *map(str, LENGTHS), "--latency-presets", "hs-mean"]
    argv += ["--repeats", "2", "--out", str(out)]
    return out, speed.main(argv), str(tiny_model_folder)


def test_throughput_runs_the_engine_and_the_bare_forward_on_the_same_tokens(run):
    _, results, spec = run
    model = results["models"][spec]
    assert list(model["presets"]) == PRESETS
    for preset, result in model["presets"].items():
        assert result["texts"] == 24 and len(result["sequence_lengths"]) == 24
        assert result["tokens"] == sum(result["sequence_lengths"])
        engine, bare = result["engine_batches"], result["bare_batches"]
        assert engine == bare and result["same_batches"], preset
        assert len(engine) == result["batches"] and sum(b["rows"] for b in engine) == 24
        assert sum(b["tokens"] for b in engine) == result["tokens"]
        assert sum(b["rows"] * b["width"] for b in engine) == result["padded_tokens"] >= result["tokens"]
        for round_ in result["rounds"]:
            assert sorted(round_["order"]) == ["bare", "engine", "st"]
            assert round_["st_tokens"] > 0
            for key in ("vs_bare", "vs_st", "engine_texts_per_s", "bare_tokens_per_s", "st_texts_per_s"):
                assert math.isfinite(round_[key]) and round_[key] > 0, (preset, key)
            assert round_["vs_bare"] == pytest.approx(round_["bare_s"] / round_["engine_s"])
            assert round_["engine_tokens_per_s"] == pytest.approx(result["tokens"] / round_["engine_s"])
        assert result["median"]["vs_bare"] == result["rounds"][0]["vs_bare"]
        assert all(0 <= layer < model["num_layers"] for layer in result["layers"])
        assert result["early_exit"] == (result["stop_after"] is not None)
        for phase in ("after_load", "throughput", "final", "bare", "st"):
            assert result["memory"][phase]["peak_rss_mib"] > 0
            assert result["memory"][phase]["torch_threads"] == results["machine"]["torch_threads"]
        assert set(result["targets"]) == {"vs_bare>=0.9", "early_exit_faster_than_bare", "default_vs_st>=1.0"}
    assert model["presets"]["hs-mean"]["targets"]["default_vs_st>=1.0"] is not None
    assert model["presets"]["kv"]["targets"]["default_vs_st>=1.0"] is None
    assert model["presets"]["kv"]["tokens"] > model["presets"]["hs-mean"]["tokens"]  # the compression prompt


def test_memory_load_calibration_and_latency_are_recorded(run):
    _, results, spec = run
    model = results["models"][spec]
    assert model["load"]["first"] is None and model["load"]["cached"]["load_seconds"] > 0
    assert model["calibration"]["seconds"] >= 0 and set(model["calibration"]["layers"]) == {"kv"}
    assert [d["text_tokens"] for d in model["documents"]] == LENGTHS
    for name in ("bare", "sentence_transformers"):
        assert model[name]["memory"]["peak_rss_mib"] > 0 and model[name]["attention"] == "sdpa"
    for latency in (model["presets"]["hs-mean"]["latency"], model["bare"]["latency"]):
        assert list(latency) == [str(n) for n in LENGTHS]
        for length in LENGTHS:
            entry = latency[str(length)]
            assert entry["tokens"] >= length and len(entry["seconds"]) == 2 and entry["median_s"] > 0
    assert model["presets"]["kv"]["latency"] is None


def test_json_round_trips_and_the_report_has_a_row_per_preset(run, capsys):
    out, results, spec = run
    assert json.loads(out.read_text(encoding="utf-8")) == results
    capsys.readouterr()
    assert speed.main(["--report", str(out)]) == results
    report = capsys.readouterr().out
    assert report == speed.render_markdown(results)
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for preset in PRESETS:
        assert sum(line.startswith(f"| {preset} |") for line in rows) == (2 if preset == "hs-mean" else 1)
    assert any(line.startswith("| bare forward |") for line in rows)
    assert results["machine"]["cores"] >= 1 and results["machine"]["versions"]["torch"]
    section = "\n".join(benchmark_report.speed_sections([results]))
    assert section.count("\n| hs-mean |") == 2 and "\n### Speed" in section and "\n#### " in section


def test_documents_have_exactly_the_asked_number_of_tokens():
    tokenizer = build_tokenizer(False)
    source = " ".join(synthetic_texts(200, seed=1))
    for length in (1, 7, 64, 300):
        text, found = exact_token_text(tokenizer, source, length)
        assert found == length == len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_targets_flag_each_rule():
    def result(vs_bare: float, vs_st: float, early_exit: bool) -> dict:
        return {"median": {"vs_bare": vs_bare, "vs_st": vs_st}, "early_exit": early_exit}

    assert speed.targets(DEFAULT_RECIPE, result(0.95, 1.2, True)) == {
        "vs_bare>=0.9": True,
        "early_exit_faster_than_bare": False,
        "default_vs_st>=1.0": True,
    }
    assert speed.targets("echo", result(0.85, 0.5, False)) == {
        "vs_bare>=0.9": False,
        "early_exit_faster_than_bare": None,
        "default_vs_st>=1.0": None,
    }
