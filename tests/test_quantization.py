"""`encode(precision=..., convert_to_tensor=...)`: int8/uint8 codes over calibrated corpus ranges, packed binary."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vaembed import Embedder
from vaembed.calibration import PRECISIONS, dequantize_embeddings, quantize_embeddings
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.quantization import INT_BUCKETS
from vaembed.calibration.statistics import STATISTICS_MAX_TOKENS

TEXTS = [
    "the fox jumps over the lazy dog",
    "a longer sentence about oceans and ships at sea",
    "bread needs yeast, flour and time",
    "interest rates rose again this quarter",
    "volcanoes erupt when magma rises",
]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEMBED_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def embedder(tiny_llama):
    model, tokenizer = tiny_llama
    torch.set_num_threads(1)
    return Embedder(model, tokenizer, "va", layers=[2, 3], postprocess="center")


def test_int8_codes_are_the_buckets_of_the_corpus_ranges(embedder):
    floats = embedder.encode(TEXTS)
    ranges = embedder.quantization_ranges()
    codes = embedder.encode(TEXTS, precision="int8")
    assert codes.dtype == np.int8 and codes.shape == floats.shape
    step = (ranges[1] - ranges[0]) / (INT_BUCKETS - 1)
    expected = np.clip(np.floor((floats.astype(np.float64) - ranges[0]) / step), 0, 255) - 128
    assert np.abs(codes.astype(np.int64) - expected).max() <= 1  # float32 vs float64 rounding at a bucket edge
    assert (codes == expected).mean() > 0.99
    back = dequantize_embeddings(codes, "int8", ranges)
    inside = (floats >= ranges[0]) & (floats <= ranges[1])
    assert np.all(np.abs(back - floats)[inside] <= (step * 0.51 + 1e-6)[np.nonzero(inside)[1]])  # half a step


def test_uint8_is_int8_shifted(embedder):
    int8 = embedder.encode(TEXTS, precision="int8")
    uint8 = embedder.encode(TEXTS, precision="uint8")
    assert uint8.dtype == np.uint8
    np.testing.assert_array_equal(uint8.astype(np.int64), int8.astype(np.int64) + 128)


def test_ranges_are_the_extremes_of_the_corpus_vectors_and_are_computed_once(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", layers=[2, 3], postprocess="center", max_length=STATISTICS_MAX_TOKENS)
    ranges = embedder.quantization_ranges()
    assert ranges.shape == (2, embedder.dimension) and np.all(ranges[1] > ranges[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most corpus texts are cut to the statistics' length
        corpus = embedder.encode(list(bundled_corpus().texts))
    np.testing.assert_allclose(ranges, np.stack([corpus.min(axis=0), corpus.max(axis=0)]), atol=1e-5)
    passes = embedder.forward_passes
    again = embedder.quantization_ranges()
    assert again is ranges and embedder.forward_passes == passes
    with pytest.raises(ValueError):
        ranges[0, 0] = 5.0  # read-only: a caller cannot corrupt later codes


def test_ranges_follow_normalize_and_post_processing(embedder):
    normalised = embedder.quantization_ranges(True)
    passes = embedder.forward_passes
    raw = embedder.quantization_ranges(False)
    assert embedder.forward_passes == passes  # one corpus pass gave both settings
    assert np.abs(normalised).max() <= 1.0 + 1e-6
    assert not np.allclose(raw, normalised, atol=1e-2)
    codes = embedder.encode(TEXTS, precision="int8", normalize=False)
    floats = embedder.encode(TEXTS, normalize=False)
    half_step = (raw[1] - raw[0]) / 255 * 0.51 + 1e-6
    inside = (floats >= raw[0]) & (floats <= raw[1])
    error = np.abs(dequantize_embeddings(codes, "int8", raw) - floats)
    assert np.all((error <= half_step) | ~inside) and inside.mean() > 0.9
    plain = embedder.with_recipe("va", layers=[2, 3], postprocess="none")
    assert not np.allclose(plain.quantization_ranges(), normalised)


def test_int8_keeps_the_similarities(embedder):
    texts = list(bundled_corpus().texts[:60])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        floats = embedder.encode(texts)
        codes = embedder.encode(texts, precision="uint8")
    back = dequantize_embeddings(codes, "uint8", embedder.quantization_ranges()).astype(np.float64)
    upper = np.triu_indices(len(texts), 1)
    exact, approximate = (floats @ floats.T)[upper], (back @ back.T)[upper]
    ranks = [np.argsort(np.argsort(values)) for values in (exact, approximate)]
    assert np.corrcoef(*ranks)[0, 1] > 0.98  # Spearman over 1770 pairs
    for row in range(len(texts)):  # and every text is its own nearest neighbour
        assert np.argmax(back @ back[row]) == row


def test_codes_are_sentence_transformers_codes_inside_the_ranges():
    from sentence_transformers.util.quantization import quantize_embeddings as st_quantize

    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 48)).astype(np.float32)
    ranges = np.stack([values.min(axis=0), values.max(axis=0)]).astype(np.float32)
    for precision in PRECISIONS:
        ours = quantize_embeddings(values, precision, ranges)
        theirs = st_quantize(values, precision, ranges=ranges)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        difference = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
        assert difference.max() <= 1 and (difference == 0).mean() > 0.995, precision  # float32 vs float64 edges


def test_binary_codes_pack_the_sign_bits(embedder):
    floats = embedder.encode(TEXTS)
    ubinary = embedder.encode(TEXTS, precision="ubinary")
    binary = embedder.encode(TEXTS, precision="binary")
    assert ubinary.dtype == np.uint8 and binary.dtype == np.int8
    assert ubinary.shape == (len(TEXTS), -(-embedder.dimension // 8))
    bits = np.unpackbits(ubinary, axis=1)[:, : embedder.dimension]
    np.testing.assert_array_equal(bits.astype(bool), floats > 0)
    np.testing.assert_array_equal(binary.astype(np.int64), ubinary.astype(np.int64) - 128)


def test_binary_pads_a_dimension_that_is_not_a_multiple_of_8():
    values = np.array([[0.5, -0.1, 0.2, 0.0, 0.3, -0.4, 0.1, 0.9, 0.2, -0.3]], dtype=np.float32)
    packed = quantize_embeddings(values, "ubinary")
    assert packed.tolist() == [[0b10101011, 0b10000000]]


def test_values_outside_the_ranges_go_to_the_end_buckets():
    ranges = np.array([[0.0, -1.0], [1.0, 1.0]])
    codes = quantize_embeddings(np.array([[-5.0, 0.0], [5.0, 0.999]]), "uint8", ranges)
    assert codes.tolist() == [[0, 127], [255, 254]]  # 255 steps of 2/255 on the second dimension
    flat = quantize_embeddings(np.array([[3.0, 0.0], [3.5, 2.0]]), "uint8", np.array([[3.0, 0.0], [3.0, 0.0]]))
    assert flat.tolist() == [[0, 0], [0, 2]]  # an empty range steps by 1 from its low, as sentence-transformers
    back = dequantize_embeddings(np.array([[0, 255]], np.uint8), "uint8", np.array([[0.0, 3.0], [2.55, 3.0]]))
    np.testing.assert_allclose(back, [[0.005, 3.0]], atol=1e-6)  # a bucket's centre, capped at the high


def test_threads_compute_the_ranges_once(tiny_llama):
    import threading

    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "va", layers=[2, 3], postprocess="none")
    found = []
    threads = [threading.Thread(target=lambda: found.append(embedder.quantization_ranges())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and all(ranges is found[0] for ranges in found)
    passes = embedder.forward_passes
    embedder.encode(TEXTS, precision="int8")
    assert embedder.forward_passes == passes + 1  # the texts' own pass only


def test_single_text_and_empty_list(embedder):
    one = embedder.encode(TEXTS[0], precision="int8")
    assert one.shape == (embedder.dimension,) and one.dtype == np.int8
    np.testing.assert_array_equal(one, embedder.encode(TEXTS[:1], precision="int8")[0])
    empty = embedder.encode([], precision="ubinary")
    assert empty.shape == (0, -(-embedder.dimension // 8)) and empty.dtype == np.uint8
    fresh = embedder.with_recipe("va", layers=[1, 2], postprocess="none")
    passes = fresh.forward_passes
    assert fresh.encode([], precision="int8").shape == (0, fresh.dimension)
    assert fresh.forward_passes == passes  # no corpus pass for nothing to code


def test_convert_to_tensor(embedder):
    floats = embedder.encode(TEXTS)
    tensor = embedder.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    np.testing.assert_allclose(tensor.numpy(), floats, atol=1e-6)
    codes = embedder.encode(TEXTS, precision="int8", convert_to_tensor=True, convert_to_numpy=True)
    assert isinstance(codes, torch.Tensor) and codes.dtype == torch.int8
    np.testing.assert_array_equal(codes.numpy(), embedder.encode(TEXTS, precision="int8"))
    assert embedder.encode([], convert_to_tensor=True).shape == (0, embedder.dimension)


def test_given_ranges_are_used(embedder):
    floats = embedder.encode(TEXTS)
    mine = np.stack([floats.min(axis=0), floats.max(axis=0)])
    codes = embedder.encode(TEXTS, precision="uint8", ranges=mine)
    assert codes.min() == 0 and codes.max() == 255
    np.testing.assert_array_equal(codes, quantize_embeddings(floats, "uint8", mine))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int4"}, "precision must be one of float32, int8, uint8, binary, ubinary"),
        ({"precision": None}, "precision must be one of"),
        ({"precision": "int8", "ranges": np.zeros((3, 4))}, r"ranges must have shape \(2, "),
        ({"precision": "int8", "ranges": "wide"}, "ranges must"),
    ],
)
def test_bad_precision_or_ranges_are_refused_before_any_pass(embedder, kwargs, message):
    passes = embedder.forward_passes
    with pytest.raises(ValueError, match=message):
        embedder.encode(TEXTS, **kwargs)
    assert embedder.forward_passes == passes


def test_bad_ranges_values_are_named():
    values = np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_embeddings(values, "int8", np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="dimension 1 is below its low"):
        quantize_embeddings(values, "int8", np.array([[0.0, 2.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="needs ranges"):
        quantize_embeddings(values, "int8")
    with pytest.raises(ValueError, match="hold NaN"):
        quantize_embeddings(np.array([[np.nan, 0.0]]), "binary")
    with pytest.raises(ValueError, match="only int8 and uint8"):
        dequantize_embeddings(values, "binary", np.zeros((2, 2)))


def test_every_precision_is_listed():
    assert PRECISIONS == ("float32", "int8", "uint8", "binary", "ubinary")
