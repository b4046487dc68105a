"""`vaembed calibrate` and `vaembed sweep` on a tiny model folder."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import pytest

from vaembed import Embedder
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.profile import CalibrationProfile, default_profile_path
from vaembed.calibration.run import model_identity
from vaembed.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRIPLES = Path(__file__).parent / "data" / "triples.json"


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def chosen_rows(block: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\S+\s+\S+\s+\S+\s+\*$", block, re.MULTILINE)]


def test_calibrate_prints_curve_saves_profile_and_plot(tiny_model_folder, tmp_path, capsys):
    texts = tmp_path / "mine.jsonl"
    rows = [json.dumps({"text": text}) for text in bundled_corpus().texts[:50]]
    texts.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["calibrate", str(tiny_model_folder), "--texts", str(texts), "--plot", "curve.png"]) == 0
    out = capsys.readouterr().out
    embedder = Embedder.from_pretrained(tiny_model_folder, "hs-mean")
    path = default_profile_path(model_identity(embedder.runner))
    profile = CalibrationProfile.load(path, model_identity(embedder.runner))
    assert f"profile: {path}" in out
    assert profile.corpus["name"] == "user" and profile.corpus["texts"] == 50
    calibration = profile.prompts["none"]
    assert chosen_rows(out) == list(calibration.layers)
    rows = re.findall(r"^\s+(\d+)\s+(\d+\.\d\d)\s", out, re.MULTILINE)
    assert [int(layer) for layer, _ in rows] == list(range(embedder.num_layers))
    assert [float(v) for _, v in rows] == pytest.approx(calibration.curve, abs=0.006)
    for preset in ("va", "wva", "aligned-wva", "kv"):
        assert f"{preset}: layers {list(calibration.layers)}" in out
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG_SIGNATURE)
    assert Embedder.from_pretrained(tiny_model_folder, "va").forward_passes == 0  # auto reuses it


def test_calibrate_per_preset_writes_one_plot_per_prompt(tiny_model_folder, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["calibrate", str(tiny_model_folder), "--n", "30", "--prompts", "per-preset", "--no-save"])
    assert code == 0
    out = capsys.readouterr().out
    assert "profile:" not in out and not (tmp_path / "cache").exists()
    for prompt in ("none", "prompteol", "compress"):
        assert f"curve {prompt}: layers" in out and "disjoint halves chose" in out
        plot = tmp_path / f"{tiny_model_folder.name}-id-curve-{prompt}.png"
        assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_plain_text_files_give_one_text_per_non_empty_line(tmp_path):
    from vaembed.cli.calibration import read_calibration_texts

    (tmp_path / "t.txt").write_text("one\n\ntwo words\n  \nthree\n", encoding="utf-8")
    assert read_calibration_texts(str(tmp_path / "t.txt")) == ["one", "two words", "three"]
    (tmp_path / "t.jsonl").write_text('"a\\n\\nb"\n{"text": "c"}\n\n', encoding="utf-8")
    assert read_calibration_texts(str(tmp_path / "t.jsonl")) == ["a\n\nb", "c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "p.json", "--no-save"], "contradict"),
        (["--texts", "missing.txt"], "does not exist"),
        (["--n", "0"], "positive integer"),
        (["--texts", "bad.jsonl"], "bad.jsonl line 2: invalid JSON"),
        (["--texts", "numbers.jsonl"], 'line 1: expected a JSON string or an object with a "text" string'),
    ],
)
def test_calibrate_errors(tiny_model_folder, tmp_path, args, message, capsys):
    (tmp_path / "bad.jsonl").write_text('"fine"\n{oops\n', encoding="utf-8")
    (tmp_path / "numbers.jsonl").write_text("1\n2\n", encoding="utf-8")
    assert main(["calibrate", str(tiny_model_folder), *args]) == 2
    assert message in capsys.readouterr().err


def test_sweep_prints_tables_and_writes_plot_and_json(tiny_model_folder, tmp_path, capsys):
    code = main(["sweep", str(tiny_model_folder), "--dev", str(TRIPLES), "--recipes", "hs-mean,va", "--json", "r.json"])
    assert code == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["recipe"] for r in results] == ["hs-mean", "va"]
    for result in results:
        assert len(result["layer_scores"]) == 4 and all(math.isfinite(v) for v in result["layer_scores"])
        best = result["best_layers"]
        assert f"best window: --layers {','.join(map(str, best))} ({result['best_score']:.4f})" in out
        assert result["best_score"] == max(result["window_scores"])
    assert "ndcg@10" in out
    assert (tmp_path / f"{tiny_model_folder.name}-sweep.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dev", "nope.jsonl"], "does not exist"),
        (["--dev", str(TRIPLES), "--recipes", "va,bogus"], "Unknown recipe 'bogus'"),
        (["--dev", str(TRIPLES), "--recipes", ","], "--recipes is empty"),
    ],
)
def test_sweep_errors(tiny_model_folder, args, message, capsys):
    assert main(["sweep", str(tiny_model_folder), *args]) == 2
    assert message in capsys.readouterr().err
