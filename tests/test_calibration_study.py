"""The calibration study end to end on a tiny model (quick sizes): probe passes, variants, scores."""

from __future__ import annotations

import json
import re

import torch

from benchmarks import calibration_study, quality
from vaembed.calibration.selection import RULES


def test_every_variant_gets_a_window_per_preset_and_a_score(tmp_path, tiny_model_folder):
    torch.set_num_threads(1)
    model = str(tiny_model_folder)
    quality.main(["--models", model, "--sizes", "quick", "--max-length", "256", "--out", str(tmp_path / "q")])
    out = tmp_path / "study.json"
    record = calibration_study.main(
        ["--models", model, "--sizes", "quick", "--tokens", "32", "--resamples", "3", "--max-length", "256",
         "--out", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    study = record["models"][model]
    expected = len(calibration_study.REPRESENTATIONS) * len(calibration_study.PROMPT_MODES) * 2 * len(RULES)
    assert len(study["variants"]) == expected
    count = study["num_layers"]
    windows = {f"{s}-{s + 1}" for s in range(count - 1)}  # width 2 on 4 layers
    assert set(study["sweep"]["va"]) >= windows
    for variant in study["variants"].values():
        for preset in ("va", "wva", "aligned-wva", "kv"):
            entry = variant[preset]
            assert len(entry["layers"]) == study["width"] and all(0 < layer < count for layer in entry["layers"])
            assert 0 < entry["frequency"] <= 1 and entry["halves_gap"] >= 0
            assert -1 <= entry["score"] <= 1
    best = max(study["sweep"]["va"].values())
    contiguous = [v["va"] for v in study["variants"].values() if "-".join(map(str, v["va"]["layers"])) in windows]
    assert contiguous and all(entry["score"] <= best + 1e-9 for entry in contiguous)  # the sweep bounds them
    assert set(study["kv_scores"]) >= {"-".join(map(str, study["kv_fallback"]))}
    from benchmarks import calibration_report

    ranked = calibration_report.ranked_variants(study)
    assert len(ranked) == expected and ranked == sorted(ranked, key=lambda row: (row["regret"], row["label"]))
    label = ranked[0]["label"]
    regret = sum(
        max(study["sweep"][p].values()) - study["variants"][label][p]["score"] for p in ("va", "wva", "aligned-wva")
    )
    assert abs(ranked[0]["regret"] - regret / 3) < 1e-12
    text = calibration_report.render_markdown(record, top_n=3)
    for preset in ("va", "wva", "aligned-wva", "kv"):
        assert sum(line.startswith(f"| {preset} |") for line in text.splitlines()) == 1
    assert f"| 1. {label} | {ranked[0]['regret']:.3f} |" in text
    stable = [row for row in ranked if row["max_halves_gap"] <= calibration_report.STABLE_GAP][:3]
    shown = {line.split(". ", 1)[1].split(" |")[0] for line in text.splitlines() if re.match(r"^\| \d+\. ", line)}
    assert shown == {row["label"] for row in ranked[:3] + stable}  # no shipped label at 32 tokens
