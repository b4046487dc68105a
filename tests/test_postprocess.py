"""Post-processing with the model's own corpus statistics: computed once, cached, applied to queries and documents."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from vaembed import Embedder
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.run import model_identity
from vaembed.calibration.statistics import (
    STATISTICS_MAX_TOKENS,
    EmbeddingStatistics,
    obtain_statistics,
    recipe_key,
    statistics_path,
)
from vaembed.connectors.chroma import VAEmbeddingFunction
from vaembed.recipes.postprocess import STD_FLOOR, Transform

TEXTS = ["the fox jumps", "a longer sentence about oceans and ships at sea", "bread needs yeast and time"]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def plain(tiny_llama):
    model, tokenizer = tiny_llama
    torch.set_num_threads(1)
    return Embedder(model, tokenizer, "va", layers=[2, 3], postprocess="none")


def corpus_vectors(embedder: Embedder) -> np.ndarray:
    """The raw readout of every bundled text, cut as the statistics cut them, computed through `encode`."""
    sequences, _ = embedder.runner.tokenizer_for(STATISTICS_MAX_TOKENS).encode(
        list(bundled_corpus().texts), embedder.recipe.prompt, "document", "truncate"
    )
    raw = embedder.with_recipe(embedder.recipe, postprocess="none")
    return raw.embed_sequences(sequences, len(sequences), normalize=False).double().numpy()


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_statistics_are_the_corpus_mean_and_std_and_the_transform_applies_them(plain):
    vectors = corpus_vectors(plain)
    centred = plain.with_recipe(plain.recipe, postprocess="center")
    np.testing.assert_allclose(centred.statistics.mean, vectors.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(centred.statistics.std, vectors.std(axis=0), atol=1e-6)
    raw = plain.encode(TEXTS, normalize=False)
    mean, std = vectors.mean(axis=0), vectors.std(axis=0)
    for role in ("document", "query"):  # the same transform for both roles
        np.testing.assert_allclose(centred.encode(TEXTS, role=role), unit(raw - mean), atol=1e-5)
    standardised = plain.with_recipe(plain.recipe, postprocess="standardize")
    np.testing.assert_allclose(standardised.encode(TEXTS), unit((raw - mean) / (std + STD_FLOOR)), atol=1e-5)
    np.testing.assert_allclose(standardised.encode(TEXTS, normalize=False), (raw - mean) / (std + STD_FLOOR), atol=1e-4)
    assert np.abs(centred.encode(TEXTS) - plain.encode(TEXTS)).max() > 1e-3


def test_statistics_are_computed_once_then_read_from_the_cache(plain, fresh_cache):
    before = plain.forward_passes
    first = plain.with_recipe(plain.recipe, postprocess="center")
    path = statistics_path(
        model_identity(plain.runner), recipe_key(first.plan.recipe), bundled_corpus().describe()["sha256"], 128
    )
    assert plain.forward_passes == before and not path.exists()  # making an embedder runs nothing
    first.encode(TEXTS[:1])  # the first use computes and saves them
    assert path.is_file() and path.parent == fresh_cache / "statistics"
    json.loads(path.read_text())  # JSON, never a pickle
    before = plain.forward_passes
    again = plain.with_recipe(plain.recipe, postprocess="standardize")  # the same statistics, read back
    assert plain.forward_passes == before and again.statistics == first.statistics
    other_layers = plain.with_recipe(plain.recipe, layers=[1], postprocess="center")
    assert other_layers.statistics.recipe != first.statistics.recipe and plain.forward_passes > before


def test_a_bad_cached_file_is_recomputed_with_a_warning_and_never_used(plain):
    first = plain.with_recipe(plain.recipe, postprocess="center")
    path = statistics_path(
        model_identity(plain.runner), recipe_key(first.plan.recipe), bundled_corpus().describe()["sha256"], 128
    )
    assert first.statistics is not None and path.is_file()
    path.write_text("{ not json")
    with pytest.warns(UserWarning, match="recomputing"):
        again = obtain_statistics(plain.runner, first.plan.recipe)
    assert again.mean == first.statistics.mean and EmbeddingStatistics.load(path).mean == first.statistics.mean
    data = json.loads(path.read_text())
    data["recipe"] = "another recipe"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="another model or recipe"):
        obtain_statistics(plain.runner, first.plan.recipe)


def test_chunks_are_post_processed_before_they_are_combined(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", layers=[3], max_length=12, long_text="chunk", postprocess="center")
    text = "the quick brown fox jumps over the lazy dog " * 4
    sequences, _ = embedder.tokenize([text])
    assert len(sequences) > 1
    raw = embedder.with_recipe(embedder.recipe, postprocess="none")
    parts = torch.stack([raw.run_pass([s]).result()[0] for s in sequences]).double().numpy()
    weights = np.array([s.weight for s in sequences], dtype=np.float64)[:, None]
    expected = unit((unit(parts - np.array(embedder.statistics.mean)) * weights).sum(axis=0))
    np.testing.assert_allclose(embedder.encode(text), expected, atol=1e-5)


def test_user_statistics_replace_the_corpus_ones(plain):
    embedder = plain.with_recipe(plain.recipe, postprocess="center")
    mine = embedder.fit_postprocess(TEXTS * 2 + ["one more", "and another"])
    assert mine.corpus["name"] == "user" and mine.corpus["texts"] == 5
    vectors = plain.encode(TEXTS + ["one more", "and another"], normalize=False)
    np.testing.assert_allclose(mine.mean, vectors.mean(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="at least 3 distinct texts"):
        embedder.fit_postprocess(["a", "a"])
    assert embedder.statistics is mine  # a refused fit changes nothing
    with pytest.raises(ValueError, match="needs a mode"):
        plain.fit_postprocess(TEXTS)
    assert plain.recipe.postprocess == "none" and plain.statistics is None


def test_threads_embedding_at_once_compute_the_statistics_once(plain, fresh_cache):
    from concurrent.futures import ThreadPoolExecutor

    centred = plain.with_recipe(plain.recipe, postprocess="center")
    alone = plain.with_recipe(plain.recipe, postprocess="center").encode(TEXTS)
    before = plain.forward_passes
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: centred.encode(TEXTS), range(4)))
    for result in results:
        np.testing.assert_array_equal(result, alone)
    assert plain.forward_passes == before + 4  # the statistics were read from the cache: one pass per call


def test_bad_modes_are_named(plain):
    with pytest.raises(ValueError, match="postprocess must be one of none, center, standardize, not 'whiten'"):
        plain.with_recipe("va", postprocess="whiten")
    with pytest.raises(ValueError, match="no transform"):
        Transform.from_statistics("none", torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="dimension 4 for statistics of 3"):
        Transform.from_statistics("center", torch.zeros(3), torch.ones(3))(torch.zeros(1, 4))


def test_chroma_stores_the_mode_and_a_reopened_function_embeds_the_same(tiny_model_folder):
    function = VAEmbeddingFunction(str(tiny_model_folder), "va", layers=[2, 3], postprocess="standardize")
    config = function.get_config()
    assert config["postprocess"] == "standardize"
    rebuilt = VAEmbeddingFunction.build_from_config(config)
    assert np.array_equal(np.stack(rebuilt(TEXTS)), np.stack(function(TEXTS)))
    with pytest.raises(ValueError, match="postprocess"):
        function.validate_config_update(config, {**config, "postprocess": "center"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert function.embedder.recipe.postprocess == "standardize"
