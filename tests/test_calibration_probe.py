"""Calibration probes: representations, prompts, selection rules and the disjoint-halves stability report."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vaembed import PROMPTS, Embedder, Recipe
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.probe import PROBES, RESIDUAL, CalibrationProbe, collect_layer_states, preset_readout
from vaembed.calibration.profile import CalibrationProfile, PromptCalibration
from vaembed.calibration.run import collect_residuals
from vaembed.calibration.selection import select_layers, select_window
from vaembed.recipes.presets import CALIBRATED_PRESETS
from vaembed.recipes.readouts import HiddenStates, ValueVectors

TEXTS = list(bundled_corpus().texts[:40])


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def base(tiny_llama):
    model, tokenizer = tiny_llama
    torch.set_num_threads(1)
    return Embedder(model, tokenizer, "hs-mean")


def test_rules_choose_the_documented_windows():
    curve = [20, 18, 16, 12, 9, 14, 11, 13, 12, 15]  # L = 10: skip 2 layers, windows of 2
    assert select_window(curve, "interior-min") == select_layers(curve) == (4, 5)
    assert select_window(curve, "global-min") == (4, 5)
    spike = [20, 18, 16, 15, 3, 16, 9, 8, 9, 11]  # one noisy layer at 4; the smooth minimum is at 7
    assert select_window(spike, "global-min") == (4, 5)
    assert select_window(spike, "smoothed-min") == (7, 8)
    assert select_window([5, 4, 3, 2, 1.0, 1.5, 2, 3, 4, 0.5], "global-min") == (8, 9)  # clipped to the end
    with pytest.raises(ValueError, match="rule must be one of interior-min, global-min, smoothed-min"):
        select_window(curve, "median")


def test_layer_states_are_the_engine_own_vectors(base):
    prompt = PROMPTS["prompteol"]
    wanted = {"res": RESIDUAL, "values": ValueVectors("mean"), "mean": HiddenStates("mean")}
    states = collect_layer_states(base.runner, TEXTS[:6], prompt, wanted, max_tokens=None)
    residuals = collect_residuals(base.runner, TEXTS[:6], prompt, max_tokens=None)
    for layer in range(base.num_layers):
        np.testing.assert_array_equal(states["res"][layer], residuals[layer])
    for layer in (0, 2):  # uncut, as encode reads them
        vectors = base.with_recipe(Recipe(prompt, ValueVectors("mean"), [layer])).encode(TEXTS[:6], normalize=False)
        np.testing.assert_allclose(states["values"][layer], vectors, atol=1e-5)
    assert len(states["mean"]) == base.num_layers and states["mean"][1].shape == (6, base.model.config.hidden_size)


def test_a_readout_probe_calibrates_each_preset_on_its_own_vectors_and_reports_both_halves(base, tmp_path):
    probe = CalibrationProbe("study", "readout", "preset", 64, "smoothed-min")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer than 200 texts
        profile = base.calibrate(TEXTS, save=False, probe=probe, resamples=3)
    assert set(profile.prompts) == set(CALIBRATED_PRESETS)  # one curve per preset
    assert profile.estimator["probe"] == probe.describe()
    for preset in CALIBRATED_PRESETS:
        curve = profile.prompts[preset]
        assert profile.presets[preset] == curve.layers and len(curve.curve) == base.num_layers
        first, second = curve.halves
        assert len(first) == len(second) == len(curve.layers)
        assert curve.halves_gap == max(abs(a - b) for a, b in zip(first, second, strict=True))
    assert preset_readout("kv", "readout") == ValueVectors("last")  # the rerouted vectors
    saved = profile.save(tmp_path / "p.json")
    assert CalibrationProfile.load(saved) == profile


def test_each_half_chooses_what_calibrating_that_half_alone_chooses(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer than 200 texts
        whole, first, second = (base.calibrate(texts, save=False, resamples=4, seed=3)
                                for texts in (TEXTS, TEXTS[0::2], TEXTS[1::2]))  # fmt: skip
    for name, curve in whole.prompts.items():
        assert curve.halves == (first.prompts[name].layers, second.prompts[name].layers)


def test_named_probes_and_their_overrides(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paper = base.calibrate(TEXTS, save=False, probe="kv-paper", resamples=2)
        per_preset = base.calibrate(TEXTS, save=False, prompts="per-preset", max_tokens=32, resamples=2)
    assert set(paper.prompts) == {"compress"} and paper.estimator["probe"]["name"] == "kv-paper"
    assert set(per_preset.prompts) == {"none", "prompteol", "compress"}
    assert per_preset.estimator["probe"]["max_tokens"] == 32 and per_preset.estimator["probe"]["prompts"] == "preset"
    assert set(PROBES) >= {"default", "kv-paper", "methods", "mean-residual"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mean = base.calibrate(TEXTS, save=False, probe="mean-residual", resamples=2)
        methods = base.calibrate(TEXTS, save=False, probe="methods", resamples=2)
        default = base.calibrate(TEXTS, save=False, resamples=2)
    assert set(mean.prompts) == {"none"} and mean.estimator["probe"] == PROBES["mean-residual"].describe()
    assert mean.estimator["probe"]["representation"] == "residual-mean"
    assert default.prompts == mean.prompts and default.estimator["probe"] == PROBES["mean-residual"].describe()
    assert mean.prompts["none"].curve != methods.prompts["none"].curve  # mean-pooled, not the last token
    assert methods.estimator["probe"]["representation"] == "residual-last"
    with pytest.raises(ValueError, match="Unknown calibration probe 'best'"):
        base.calibrate(TEXTS, save=False, probe="best")
    with pytest.raises(ValueError, match="representation must be one of"):
        CalibrationProbe(representation="logits")


def test_the_command_warns_when_the_halves_disagree(monkeypatch, base, tiny_model_folder, capsys):
    from dataclasses import replace

    from vaembed.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = base.calibrate(TEXTS, save=False, resamples=2)
    curve = real.prompts["none"]
    split = replace(real, prompts={"none": replace(curve, halves=((0, 1), (2, 3)))})
    monkeypatch.setattr(Embedder, "calibrate", lambda self, *args, **kwargs: split)
    code = main(["calibrate", str(tiny_model_folder), "--no-save", "--plot", str(tiny_model_folder / "c.png")])
    captured = capsys.readouterr()
    assert code == 0 and "disjoint halves chose [0, 1] and [2, 3]" in captured.out
    assert "warning: the two halves of the texts disagree by 2 layers" in captured.err
    assert PromptCalibration(
        curve.curve, curve.plain_curve, curve.curve_std, (1, 2), 1.0, ((1, 2), (2, 3))
    ).halves_agree
