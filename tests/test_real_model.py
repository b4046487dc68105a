"""End-to-end checks on the real default model (smollm2-135m), installed by the README's set-up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from vaembed import DEFAULT_MODEL, DEFAULT_RECIPE, PRESET_RECIPES, Embedder

TRIPLES = json.loads((Path(__file__).parent / "data" / "triples.json").read_text())
ASSERTED = {"hs-mean", "prompteol", "aligned-wva", "kv"}


def paraphrase_score(embedder: Embedder) -> tuple[int, float]:
    """How often the paraphrase beats the unrelated text, and the mean cosine margin between them."""
    anchors, paraphrases, unrelated = (embedder.encode([t[i] for t in TRIPLES]) for i in range(3))
    margins = (anchors * paraphrases).sum(1) - (anchors * unrelated).sum(1)
    return int((margins > 0).sum()), float(margins.mean())


def test_paraphrase_triples_for_every_preset(real_embedder, record_property):
    assert len(TRIPLES) == 20
    # the default recipe with its default post-processing (bundled-corpus statistics, about 40 s on this CPU);
    # the other presets score their raw vectors, so the test does not compute statistics for each of them
    raw = {preset: None if preset == DEFAULT_RECIPE else "none" for preset in PRESET_RECIPES}
    results = {preset: paraphrase_score(real_embedder.with_recipe(preset, postprocess=raw[preset])) for preset in raw}
    scores = {preset: wins for preset, (wins, _) in results.items()}
    record_property("paraphrase_scores", scores)
    print("\npreset: paraphrase beats unrelated (of 20), mean cosine margin")
    for preset, (wins, margin) in results.items():
        print(f"  {preset:17s} {wins:2d}/20  {margin:.3f}")
    for preset in ASSERTED:
        assert scores[preset] >= 17, (preset, scores)
    for preset in set(PRESET_RECIPES) - ASSERTED:
        assert scores[preset] >= 15, (preset, scores)


def test_first_load_converted_the_gguf_into_the_cache(real_embedder, real_cache):
    folder = Path(real_cache) / "models" / DEFAULT_MODEL
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert real_embedder.num_layers == 30 and real_embedder.model.config.hidden_size == 576
    print(f"\nfirst load (GGUF conversion included): {real_embedder.first_load_seconds:.1f} s")


def test_cached_load_is_fast(real_embedder, real_cache):
    from transformers import AutoTokenizer

    folder = Path(real_cache) / "models" / DEFAULT_MODEL
    start = time.perf_counter()
    AutoTokenizer.from_pretrained(folder)
    tokenizer_seconds = time.perf_counter() - start
    start = time.perf_counter()
    embedder = Embedder.from_pretrained(DEFAULT_MODEL, "va", share=False)  # a real load, not the shared copy
    total = time.perf_counter() - start
    print(f"\ncached load: {total:.2f} s in all, tokenizer {tokenizer_seconds:.2f} s")
    assert total - tokenizer_seconds < 2.0
    assert np.allclose(embedder.encode("a test"), real_embedder.with_recipe("va").encode("a test"), atol=1e-6)


def test_real_model_is_batch_invariant_and_finite(real_embedder):
    texts = ["", "   ", "A short one.", "A much longer sentence about rivers, mountains and the weather in spring."]
    for preset in ("va", "kv", "token-prepending"):
        embedder = real_embedder.with_recipe(preset)
        together = embedder.encode(texts, normalize=False)
        alone = np.stack([embedder.encode([t], normalize=False)[0] for t in texts])
        assert np.isfinite(together).all()
        assert np.abs(together - alone).max() <= 1e-3 * max(1.0, float(np.abs(alone).max()))


@pytest.mark.parametrize("policy", ["truncate", "chunk"])
def test_real_model_long_inputs(real_embedder, policy):
    real_embedder.with_recipe("kv")  # the session's profile exists from here on
    embedder = Embedder(real_embedder.model, real_embedder.tokenizer, "kv", max_length=128, long_text=policy)
    assert embedder.forward_passes == 0  # found the session's profile: same weights, another name
    long_text = " ".join(t[0] for t in TRIPLES) * 3
    vector = embedder.encode(long_text)
    assert np.isfinite(vector).all() and vector.shape == (576,)


def test_default_model_calibration(real_embedder):
    import math

    va = real_embedder.with_recipe("va", "auto")  # calibrates once into the session cache (or reuses the profile)
    profile = va.calibration_profile
    num_layers = real_embedder.num_layers
    calibration = profile.prompts["none"]
    print(f"\ncalibration: {profile.seconds:.1f} s on {profile.corpus['texts']} texts; layers {calibration.layers}")
    print("ID curve:", " ".join(f"{v:.1f}" for v in calibration.curve))
    assert len(calibration.curve) == num_layers and all(math.isfinite(v) for v in calibration.curve)
    assert profile.corpus["name"] == "bundled" and profile.corpus["texts"] >= 300
    for preset, layers in profile.presets.items():
        assert min(layers) >= math.ceil(0.2 * num_layers), (preset, layers)
        assert len(layers) == max(2, round(0.1 * num_layers))
    assert va.plan.recipe.layers == profile.presets["va"]
    assert real_embedder.with_recipe("kv").plan.recipe.intervention.layers == profile.presets["kv"]


def test_quantized_codes_keep_the_default_recipes_answers(real_embedder, record_property):
    from vaembed.cli.demo import load_corpus

    corpus = load_corpus()
    embedder = real_embedder.with_recipe(DEFAULT_RECIPE)
    queries = [item.query for item in corpus.queries]
    answers = np.array([item.answer for item in corpus.queries])
    assert embedder.statistics is not None  # the post-processing statistics first, so the timing is the ranges' pass
    start = time.perf_counter()
    embedder.quantization_ranges()
    record_property("ranges_seconds", round(time.perf_counter() - start, 1))
    firsts = {}
    for precision in ("float32", "int8", "ubinary"):
        documents = embedder.encode(corpus.documents, precision=precision)
        asked = embedder.encode_query(queries, precision=precision)
        if precision == "ubinary":  # Hamming distance between sign bits
            bits = np.unpackbits(asked, axis=1)[:, None, :] != np.unpackbits(documents, axis=1)[None, :, :]
            scores = -bits.sum(-1)
        else:
            scores = asked.astype(np.float64) @ documents.astype(np.float64).T
        firsts[precision] = int((scores.argmax(1) == answers).sum())
    record_property("answers_first", firsts)
    assert firsts["float32"] >= 4
    assert firsts["int8"] >= firsts["float32"] - 1 and firsts["ubinary"] >= firsts["float32"] - 2, firsts
