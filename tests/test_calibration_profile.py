"""Layer calibration on an embedder: residual capture, profiles on disk, and `layers="auto"`."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from vaembed import Embedder
from vaembed.calibration.auto import obtain_profile
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.profile import CalibrationProfile, ProfileError, default_profile_path
from vaembed.calibration.run import collect_residuals, model_identity
from vaembed.engine.batching import plan_batches
from vaembed.recipes import PRESET_RECIPES, get_recipe, resolve_layers
from vaembed.recipes.prompts import PROMPTS
from vaembed.version import __version__

N_TEXTS = 60
BATCH = 8


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test starts with an empty cache, so no profile leaks between tests."""
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def base(tiny_llama):
    model, tokenizer = tiny_llama
    return Embedder(model, tokenizer, "hs-mean", name="tiny-llama")


def small_profile(embedder: Embedder, **kwargs) -> CalibrationProfile:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer than 200 texts warns
        return embedder.calibrate(n=N_TEXTS, save=False, **kwargs)


@pytest.fixture()
def profile(base):
    return small_profile(base)


# --------------------------------------------------------------------------- the computation


def test_residuals_equal_the_models_own_hidden_states(base, tiny_llama):
    model, tokenizer = tiny_llama
    texts = ["a short one", "a somewhat longer text about cats and dogs", "x"]
    residuals = collect_residuals(base.runner, texts, PROMPTS["none"], batch_size=2)
    with torch.inference_mode():
        for row, text in enumerate(texts):
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            states = model(input_ids=ids, output_hidden_states=True).hidden_states
            for layer in range(base.num_layers - 1):  # the last entry is after the final norm
                np.testing.assert_allclose(residuals[layer][row], states[layer + 1][0, -1].numpy(), atol=1e-5)


def test_one_pass_per_batch_and_prompt(base):
    texts = list(bundled_corpus().texts[:N_TEXTS])

    def batches(prompt_name: str) -> int:  # the runner's token-budgeted batches of the cut texts
        sequences, _ = base.runner.tokenizer_for(96).encode(texts, PROMPTS[prompt_name], "document", "truncate")
        return len(plan_batches([len(s.ids) for s in sequences], BATCH, base.batch_token_budget))

    base.forward_passes = 0
    small_profile(base)
    assert base.forward_passes == batches("none")
    base.forward_passes = 0
    per_preset = small_profile(base, prompts="per-preset")
    assert base.forward_passes == sum(batches(name) for name in ("none", "prompteol", "compress"))
    assert set(per_preset.prompts) == {"none", "prompteol", "compress"}
    assert per_preset.presets["va"] == per_preset.prompts["none"].layers
    assert per_preset.presets["kv"] == per_preset.prompts["compress"].layers


def test_profile_contents(profile, base):
    num_layers = base.num_layers
    skip = math.ceil(0.2 * num_layers)
    calibration = profile.prompts["none"]
    assert len(calibration.curve) == len(calibration.plain_curve) == len(calibration.curve_std) == num_layers
    assert all(math.isfinite(v) and v > 0 for v in calibration.curve)
    assert len(calibration.layers) == max(2, round(0.1 * num_layers))
    assert min(calibration.layers) >= skip
    assert set(profile.presets) == {"va", "wva", "aligned-wva", "kv"}
    assert all(layers == calibration.layers for layers in profile.presets.values())
    assert profile.model == model_identity(base.runner)
    assert profile.corpus["name"] == "bundled" and profile.corpus["texts"] == N_TEXTS
    assert profile.library_version == __version__
    assert 0 < calibration.frequency <= 1 and profile.seconds > 0


def test_max_tokens_changes_what_is_measured(base):
    long_texts = [" ".join(["word"] * 40 + [str(i)] * 3) for i in range(20)]
    full = collect_residuals(base.runner, long_texts, PROMPTS["none"], max_tokens=None)
    cut = collect_residuals(base.runner, long_texts, PROMPTS["none"], max_tokens=8)
    assert not np.allclose(full[1], cut[1])
    assert np.allclose(cut[1][0], cut[1][1])  # cut to identical prefixes


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"texts": ["same", "same", "other"]}, ValueError, "at least 3 distinct texts, got 2"),
        ({"texts": ["a", "b", 3]}, TypeError, r"texts\[2\] must be str, not int"),
        ({"texts": "one string"}, TypeError, "not a single string"),
        ({"n": 0}, ValueError, "n must be a positive int"),
        ({"prompts": "all"}, ValueError, "prompts must be 'text' or 'per-preset'"),
        ({"max_tokens": 1}, ValueError, "max_tokens must be an int >= 2"),
    ],
)
def test_bad_calibration_input_is_named_and_changes_nothing(base, kwargs, error, match):
    with pytest.raises(error, match=match):
        base.calibrate(save=False, **kwargs)
    assert base.calibration_profile is None and base.forward_passes == 0


def test_bundled_corpus_is_large_varied_and_licensed():
    import importlib.resources

    raw = json.loads(importlib.resources.files("vaembed").joinpath("data", "calibration_corpus.json").read_text())
    corpus = bundled_corpus()
    words = [len(text.split()) for text in corpus.texts]
    assert len(corpus.texts) >= 300 and len(set(corpus.texts)) == len(corpus.texts)
    assert "CC0" in corpus.licence
    assert len({entry["topic"] for entry in raw["texts"]}) >= 25
    assert sum(w <= 20 for w in words) >= 80 and sum(w >= 150 for w in words) >= 80
    first_topics = {entry["topic"] for entry in raw["texts"][:60]}
    assert len(first_topics) >= 15  # shuffled: any prefix mixes topics


# ------------------------------------------------------------------------------- profile files


def test_profile_round_trip(profile, tmp_path):
    path = profile.save(tmp_path / "p.json")
    assert CalibrationProfile.load(path, profile.model) == profile
    assert json.loads(path.read_text())["presets"]["va"] == list(profile.presets["va"])


def test_save_is_atomic(profile, tmp_path, monkeypatch):
    path = profile.save(tmp_path / "p.json")
    before = path.read_bytes()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        profile.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def corrupt_variants(profile: CalibrationProfile) -> dict[str, str]:
    data = profile.to_dict()
    other_model = json.loads(json.dumps(data))
    other_model["model"]["config_hash"] = "0" * 64
    other_weights = json.loads(json.dumps(data))
    other_weights["model"]["weights_hash"] = "0" * 64
    old_version = json.loads(json.dumps(data))
    old_version["library_version"] = "0.0.9" if not __version__.startswith("0.0") else "9.9.0"
    bad_layers = json.loads(json.dumps(data))
    bad_layers["presets"]["va"] = [999]
    nan_curve = json.loads(json.dumps(data))
    nan_curve["prompts"]["none"]["curve"][0] = None
    return {
        "not json": "{ this is not json",
        "truncated": json.dumps(data)[:-40],
        "another model": json.dumps(other_model),
        "other weights": json.dumps(other_weights),
        "incompatible version": json.dumps(old_version),
        "layer out of range": json.dumps(bad_layers),
        "null in curve": json.dumps(nan_curve),
        "other format": json.dumps({**data, "format": 99}),
    }


@pytest.mark.parametrize(
    "kind",
    ["not json", "truncated", "another model", "other weights", "incompatible version", "layer out of range",
     "null in curve", "other format"],
)  # fmt: skip
def test_bad_default_profile_is_recomputed_with_a_warning(base, profile, kind):
    path = default_profile_path(model_identity(base.runner))
    path.parent.mkdir(parents=True)
    path.write_text(corrupt_variants(profile)[kind])
    base.forward_passes = 0
    with pytest.warns(UserWarning, match="recalibrating"):
        recomputed = obtain_profile(base.runner)
    assert base.forward_passes > 0
    assert CalibrationProfile.load(path, model_identity(base.runner)) == recomputed


@pytest.mark.parametrize("kind", ["not json", "another model", "incompatible version", "layer out of range"])
def test_bad_explicit_profile_raises(base, profile, kind, tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(corrupt_variants(profile)[kind])
    with pytest.raises(ProfileError, match="mine.json"):
        Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama", calibration=path)
    assert path.read_text() == corrupt_variants(profile)[kind]


def test_profile_object_for_another_model_raises(profile, tiny_llama):
    from transformers import LlamaConfig, LlamaModel

    model, tokenizer = tiny_llama
    config = LlamaConfig(**{**model.config.to_dict(), "num_hidden_layers": 3})
    other = LlamaModel(config).eval()
    with pytest.raises(ProfileError, match="another model"):
        Embedder(other, tokenizer, "va", "auto", name="tiny-llama", calibration=profile)


def test_missing_explicit_path_is_calibrated_and_written(base, tmp_path):
    path = tmp_path / "new" / "profile.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedder = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama", calibration=path)
    assert embedder.calibration_profile == CalibrationProfile.load(path)


# ------------------------------------------------------------------------------ layers="auto"


def test_auto_calibrates_once_then_reuses_the_saved_profile(base, fresh_cache):
    first = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama")
    assert first.forward_passes > 0  # calibrated on the bundled corpus
    saved = default_profile_path(model_identity(first.runner))
    assert saved.is_file() and saved.parent.parent == fresh_cache
    second = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama")
    assert second.forward_passes == 0
    assert second.plan.recipe.layers == first.calibration_profile.presets["va"]
    kv = second.with_recipe("kv")
    assert kv.forward_passes == 0
    assert kv.plan.recipe.intervention.layers == first.calibration_profile.presets["kv"]
    assert kv.plan.recipe.layers == (base.num_layers - 1,)
    wva = second.with_recipe("wva", "auto")
    assert wva.plan.recipe.layers == first.calibration_profile.presets["wva"]


def test_a_new_default_probe_calibrates_afresh_instead_of_reusing_old_profiles(base, monkeypatch):
    from vaembed.calibration import probe

    first = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama")
    old_path = default_profile_path(model_identity(first.runner))
    assert first.calibration_profile.estimator["probe"] == probe.PROBES["default"].describe()
    monkeypatch.setitem(probe.PROBES, "default", probe.CalibrationProbe("default", "residual-last", "text", 96))
    new_path = default_profile_path(model_identity(first.runner))
    assert new_path != old_path and old_path.is_file()
    second = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama")
    assert second.forward_passes > 0 and new_path.is_file()  # not the profile measured the earlier way
    assert second.calibration_profile.estimator["probe"]["representation"] == "residual-last"


def test_profile_follows_the_weights_not_the_name_or_dtype(base, tiny_llama):
    from transformers import LlamaModel

    first = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama")
    renamed = Embedder(base.model, base.tokenizer, "va", "auto", name="/some/other/path")
    assert renamed.forward_passes == 0 and renamed.calibration_profile == first.calibration_profile
    model, tokenizer = tiny_llama
    half = LlamaModel(model.config).to(torch.bfloat16).eval()
    half.load_state_dict(model.state_dict())
    assert Embedder(half, tokenizer, "va", "auto").forward_passes == 0
    torch.manual_seed(1)
    other_weights = LlamaModel(model.config).eval()
    assert (
        model_identity(Embedder(other_weights, tokenizer, "hs-mean").runner).config_hash
        == first.calibration_profile.model.config_hash
    )
    assert Embedder(other_weights, tokenizer, "va", "auto").forward_passes > 0


def test_a_given_profile_sets_the_layers(base, profile):
    data = profile.to_dict()
    data["presets"]["va"] = [2, 3]
    data["presets"]["aligned-wva"] = [1, 2]
    crafted = CalibrationProfile.from_dict(data)
    embedder = Embedder(base.model, base.tokenizer, "va", "auto", name="tiny-llama", calibration=crafted)
    assert embedder.plan.recipe.layers == (2, 3) and embedder.forward_passes == 0
    assert embedder.with_recipe("aligned-wva", "auto").plan.recipe.layers == (1, 2)
    custom = get_recipe("va").with_layers("auto")
    custom = type(custom)(PROMPTS["echo"], custom.readout, "auto", name="my-echo-values")
    assert embedder.with_recipe(custom).plan.recipe.layers == profile.prompts["none"].layers
    explicit = Embedder(base.model, base.tokenizer, "va", [1], name="tiny-llama", calibration=crafted)
    assert explicit.plan.recipe.layers == (1,)


def test_calibrate_applies_the_new_profile(base):
    embedder = base.with_recipe("va", layers=[0])
    profile = small_profile(embedder)
    assert embedder.plan.recipe.layers == (0,)  # explicit layers stay
    auto = base.with_recipe("va", layers=[0])
    auto.recipe = PRESET_RECIPES["va"].with_layers("auto")
    small_profile(auto)
    assert auto.plan.recipe.layers == profile.presets["va"]


@pytest.mark.parametrize("preset", ["va", "wva", "aligned-wva"])
def test_value_readouts_default_to_the_fallback_window_without_calibrating(base, preset, fresh_cache):
    embedder = base.with_recipe(preset)
    half = base.num_layers // 2
    assert embedder.plan.recipe.layers == tuple(range(half, base.num_layers))
    assert embedder.calibration_profile is None and embedder.forward_passes == 0
    assert not (fresh_cache / "profiles").exists()


@pytest.mark.parametrize("preset", ["va", "aligned-wva"])
def test_layers_auto_calibrates_once_and_then_reads_the_profile(base, preset, fresh_cache):
    embedder = Embedder(base.model, base.tokenizer, preset, "auto", name="tiny-llama")
    profile = embedder.calibration_profile
    assert profile is not None and embedder.forward_passes > 0  # calibrated once, on first use
    assert embedder.plan.recipe.layers == profile.presets[preset]
    assert profile.estimator["probe"]["name"] == "mean-residual"
    assert len(list((fresh_cache / "profiles").glob("*.json"))) == 1
    again = Embedder(base.model, base.tokenizer, preset, "auto", name="tiny-llama")
    assert again.forward_passes == 0 and again.plan.recipe.layers == profile.presets[preset]  # read, not recomputed


def test_auto_without_a_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="calibration profile"):
        PRESET_RECIPES["va"].with_layers("auto").resolve(30)
    with pytest.raises(ValueError, match="calibration profile"):
        PRESET_RECIPES["kv"].resolve(30)
    with pytest.raises(ValueError, match="calibration profile"):
        resolve_layers("auto", 30)
    assert PRESET_RECIPES["va"].with_layers("auto").resolve(30, auto_layers=[15, 16, 17]).layers == (15, 16, 17)
    assert PRESET_RECIPES["wva"].resolve(30).layers == tuple(range(15, 30))
    assert PRESET_RECIPES["va"].resolve(30).layers == tuple(range(15, 30))  # its default needs no profile
    kv = PRESET_RECIPES["kv"].resolve(30, auto_layers=[15, 16, 17])
    assert kv.intervention.layers == (15, 16, 17) and kv.layers == (29,)
