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

    from benchmarks import calibration_defaults

    checked = calibration_defaults.main(
        [str(out), "--variant", label, "--max-length", "256", "--out", str(tmp_path / "defaults.json")]
    )
    for preset in ("va", "aligned-wva"):
        row = checked["models"][model][preset]
        assert row["auto"]["layers"] == study["variants"][label][preset]["layers"]
        assert abs(row["auto"]["raw"] - study["variants"][label][preset]["score"]) < 1e-9  # the study's own score
        assert abs(row["fallback"]["raw"] - study["fallback_score"][preset]) < 1e-9
        assert all(-1 <= row[w][mode] <= 1 for w in ("auto", "fallback") for mode in calibration_defaults.MODES)
    assert "| auto wins |" in calibration_defaults.render_markdown(checked)


def _synthetic_model(va: dict[str, float], fallback: float, gaps: dict[str, int]) -> dict:
    """A study record of one 10-layer model: sweep of windows of 2, two variants with given va scores."""
    sweep = {f"{s}-{s + 1}": 0.1 * s / 8 for s in range(9)}  # best 8-9: 0.1
    record = {"num_layers": 10, "width": 2, "fallback": list(range(5, 10)), "kv_fallback": [5, 6],
              "kv_scores": {"5-6": 0.2}, "sweep": {p: dict(sweep) for p in ("va", "wva", "aligned-wva")},
              "fallback_score": {p: fallback for p in ("va", "wva", "aligned-wva")}, "variants": {},
              "curves": {}}  # fmt: skip
    for label, score in va.items():
        entry = {p: {"layers": [8, 9], "score": 0.1, "halves_gap": 0} for p in ("wva", "aligned-wva", "kv")}
        entry["va"] = {"layers": [2, 3], "score": score, "halves_gap": gaps[label]}
        record["variants"][label] = entry
        name = label.split("/")[0]
        record["curves"][f"{name}/none/96"] = [float(10 - layer) for layer in range(10)]
    return record


def test_across_models_ranks_variants_by_their_mean_regret_over_models(tmp_path):
    from benchmarks import calibration_figures, calibration_report

    a, b = "residual-last/none/96t/330/interior-min", "residual-mean/none/96t/330/global-min"
    record = {"sizes": "small", "models": {
        "m1": _synthetic_model({a: 0.04, b: 0.07}, fallback=0.05, gaps={a: 0, b: 3}),
        "m2": _synthetic_model({a: 0.10, b: 0.01}, fallback=0.05, gaps={a: 1, b: 0}),
    }}  # fmt: skip
    ranked = calibration_report.across_models(record)
    assert [row["label"] for row in ranked] == [a, b]  # a: (0.02 + 0) / 2, b: (0.01 + 0.03) / 2
    regret_a = ((0.1 - 0.04) / 3 + 0.0) / 2
    regret_b = ((0.1 - 0.07) / 3 + (0.1 - 0.01) / 3) / 2
    assert abs(ranked[0]["regret"] - regret_a) < 1e-12 and abs(ranked[1]["regret"] - regret_b) < 1e-12
    assert abs(ranked[1]["worst"] - 0.03) < 1e-12 and ranked[1]["max_halves_gap"] == 3
    assert ranked[0]["beats_fallback"] == 2 + 3 and ranked[1]["beats_fallback"] == 3 + 2  # va below on one model
    text = calibration_report.render_markdown(record, top_n=1)
    assert "#### Across models (m1, m2)" in text
    assert f"| 1. {a} | {regret_a:.3f} | {max(ranked[0]['models'].values()):.3f} |" in text
    single = calibration_report.render_markdown({"sizes": "small", "models": {"m1": record["models"]["m1"]}})
    assert "Across models" not in single

    assert calibration_figures.curve_key("readout/preset/256t/150/smoothed-min") == "readout:va/none/256"
    assert calibration_figures.curve_key(b) == "residual-mean/none/96"
    for shipped in ("kv-paper", "mean-residual"):
        record["models"]["m1"]["variants"][calibration_report.SHIPPED[shipped]] = record["models"]["m1"]["variants"][a]
    record["models"]["m1"]["curves"]["residual-last/compress/96"] = [1.0] * 10
    out = tmp_path / "figures"
    paths = calibration_figures.main([str(_write(tmp_path, {"models": {"m1": record["models"]["m1"]}})),
                                      "--out", str(out), "--variant", b])  # fmt: skip
    assert paths == [out / "calibration-m1.png"] and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.iterdir()] == ["calibration-m1.png"]  # written atomically: no temporary left


def _write(folder, record: dict):
    path = folder / "study.json"
    path.write_text(json.dumps(record))
    return path


def test_the_halves_report_shows_each_window_its_gap_and_scores():
    from benchmarks.calibration_halves import halves_gap, render_markdown

    assert halves_gap([11, 12, 13], [12, 13, 14]) == 1 and halves_gap([5, 6], [12, 13]) == 7
    score = {"raw": 0.5, "center": 0.61, "standardize": 0.62}
    rule = {"layers": [12, 27, 29], "halves": [[11, 12, 13], [12, 13, 14]], "halves_gap": 1,
            "single_curve_halves": [[21, 22, 23], [17, 18, 19]], "single_curve_halves_gap": 4,
            "scores": {"va": [score] * 3, "aligned-wva": [score] * 3}}  # fmt: skip
    presets = {p: {"postprocess": m, "fallback": {"layers": [15, 16, 17], **score},
                   "sweep_best": {"layers": [27, 28, 29], **score}}
               for p, m in (("va", "center"), ("aligned-wva", "standardize"))}  # fmt: skip
    table = render_markdown({"models": {"smollm2-135m": {"rules": {"interior-min": rule}, "presets": presets}}})
    assert "| smollm2-135m | interior-min | 12,27,29 | 11-13 and 12-14 | 1 | 21-23 and 17-19 | 4 |" in table
    assert "0.610 / 0.610 / 0.610 | 0.620 / 0.620 / 0.620 |" in table  # each preset in its post-processing
    assert "| smollm2-135m | va | center | 15-17: 0.610 | 27-29: 0.500 raw, 0.610 center |" in table
