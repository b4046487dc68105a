"""Dev-set loading, sweep metrics, and the supervised layer sweep on a tiny random model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vaembed import PROMPTS, READOUTS, Embedder, KVReroute, Recipe
from vaembed.calibration.devset import DevSet, load_dev_set, ndcg_at_10, score_dev_set, spearman
from vaembed.calibration.sweep import SweepResult, sweep_layers
from vaembed.recipes import get_recipe, window_width

TRIPLES_PATH = Path(__file__).parent / "data" / "triples.json"
TRIPLES = json.loads(TRIPLES_PATH.read_text())[:8]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are far faster on one thread, above all on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pairs_dev() -> DevSet:
    rows = [row for a, p, n in TRIPLES for row in ((a, p, 1.0), (a, n, 0.0), (p, n, 0.2))]
    return DevSet("pairs", pairs=tuple(rows), name="triple-pairs")


def retrieval_dev() -> DevSet:
    documents = tuple(t[1] for t in TRIPLES) + tuple(t[2] for t in TRIPLES)
    relevant = tuple(frozenset({i}) for i in range(len(TRIPLES)))
    return DevSet("retrieval", queries=tuple(t[0] for t in TRIPLES), documents=documents, relevant=relevant)


def write(tmp_path: Path, name: str, rows: list, jsonl: bool = True) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) if jsonl else json.dumps(rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------- loading
def test_load_pairs_jsonl(tmp_path):
    rows = [{"text1": "a", "text2": "b", "score": 1}, {"text1": "", "text2": "d", "score": 0.5}]
    path = write(tmp_path, "sts.jsonl", [*rows, {"text1": "e", "text2": "f", "score": -2.0}])
    dev = load_dev_set(path)
    assert (dev.kind, dev.metric, dev.name, len(dev)) == ("pairs", "spearman", "sts", 3)
    assert dev.pairs == (("a", "b", 1.0), ("", "d", 0.5), ("e", "f", -2.0))


def test_load_retrieval_rows_deduplicates_documents(tmp_path):
    rows = [
        {"query": "q1", "relevant": ["d1", "d2"], "negatives": ["d3"]},
        {"query": "q2", "relevant": ["d3"], "negatives": ["d1", "d4"]},
        {"document": "d4"},
        {"document": "d5"},
    ]
    dev = load_dev_set(write(tmp_path, "ret.jsonl", rows))
    assert (dev.kind, dev.metric) == ("retrieval", "ndcg@10")
    assert dev.queries == ("q1", "q2")
    assert dev.documents == ("d1", "d2", "d3", "d4", "d5")
    assert dev.relevant == (frozenset({0, 1}), frozenset({2}))


def test_load_triples_as_list_and_as_objects(tmp_path):
    listed = load_dev_set(TRIPLES_PATH)
    triples = json.loads(TRIPLES_PATH.read_text())
    assert listed.queries == tuple(t[0] for t in triples)
    assert len(listed.documents) == len({text for t in triples for text in t[1:]})
    for query, chosen in enumerate(listed.relevant):
        assert [listed.documents[i] for i in chosen] == [triples[query][1]]
        assert triples[query][2] in listed.documents
    objects = [{"anchor": a, "positive": p, "negative": n} for a, p, n in triples]
    assert load_dev_set(write(tmp_path, "triples.jsonl", objects)) == listed  # same stem, same content


PAIR = {"text1": "a", "text2": "b", "score": 1.0}
ERRORS = [
    ("x.jsonl", '{"text1": "a", "text2": "b", "score": 1}\n{"text1": oops}', "line 2: invalid JSON"),
    ("x.jsonl", '{"text": "a"}', "line 1: unknown row shape"),
    ("x.jsonl", "[1, 2]", "line 1: unknown row shape"),
    ("x.jsonl", json.dumps(PAIR) + '\n{"query": "q", "relevant": ["d"]}', "line 2: a query row in a file of pairs"),
    ("x.jsonl", '{"text1": 3, "text2": "b", "score": 1}', "line 1: text1 must be a string, not int"),
    ("x.jsonl", '{"text1": "a", "text2": "b", "score": NaN}', "line 1: score must be finite"),
    ("x.jsonl", '{"text1": "a", "text2": "b", "score": true}', "line 1: score must be a number, not bool"),
    ("x.jsonl", f"{json.dumps(PAIR)}\n\n{json.dumps(PAIR)}", "at least 3 pairs, found 2"),
    ("x.jsonl", '{"query": "q", "relevant": []}', "line 1: the query has no relevant document"),
    ("x.jsonl", '{"query": "q", "relevant": "d"}', "line 1: relevant must be a list of strings, not str"),
    ("x.jsonl", '{"query": "q", "relevant": ["d"]}\n{"document": "e"}', "at least 2 queries, found 1"),
    ("x.jsonl", "\n\n", "holds no rows"),
    ("x.json", '{"text1": "a"}', "must hold a list of rows, not a dict"),
    ("x.json", '[["a", "b", "c"], ["a", 5, "c"]]', "row 2: positive must be a string, not int"),
    ("x.txt", "[]", "must be a .jsonl or .json file"),
]


@pytest.mark.parametrize(("name", "content", "message"), ERRORS)
def test_load_errors_name_file_row_and_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_dev_set(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------------------- metrics
def test_spearman_hand_computed_with_ties():
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman([10, 20, 20, 30, 40], [3, 1, 1, 2, 5]) == pytest.approx(7 / 19)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_constant_side_is_zero_and_bad_input_raises():
    assert spearman([1.0, 1.0, 1.0], [1, 2, 3]) == 0.0
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        spearman([1, float("nan")], [1, 2])


def test_ndcg_at_10_hand_computed():
    assert ndcg_at_10(np.array([[0.1, 0.9, 0.5]]), [{1, 2}]) == pytest.approx(1.0)
    partial = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))  # relevant at ranks 2 and 4
    scores = np.array([[5.0, 4, 3, 2, 1], [1.0, 2, 3, 4, 5]])
    assert ndcg_at_10(scores, [{1, 3}, {4}]) == pytest.approx((partial + 1.0) / 2)
    assert ndcg_at_10(-np.arange(12.0)[None, :], [{11}]) == 0.0  # ranked 12th: outside the top 10
    with pytest.raises(ValueError, match="Query 0"):
        ndcg_at_10(np.zeros((1, 3)), [set()])


def test_score_dev_set_uses_cosine():
    dev = DevSet("pairs", pairs=(("a", "b", 0.1), ("c", "d", 0.5), ("e", "f", 0.9)))
    first = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    second = np.array([[-1.0, 0.2], [1.0, 1.0], [5.0, 0.1]])  # cosines increase with the gold score
    assert score_dev_set(dev, first, second) == pytest.approx(1.0)
    assert score_dev_set(dev, first, second[::-1] * [[1, -1]]) < 1.0
    retrieval = DevSet("retrieval", queries=("q", "r"), documents=("x", "y"), relevant=(frozenset({1}), frozenset({0})))
    assert score_dev_set(retrieval, torch.eye(2), torch.eye(2)) == pytest.approx(1 / math.log2(3))  # both 2nd
    assert score_dev_set(retrieval, torch.eye(2), torch.eye(2)[[1, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"document embeddings must have shape \(2, dim\)"):
        score_dev_set(retrieval, np.eye(2), np.eye(3))


# ----------------------------------------------------------------------------------------- sweep
@pytest.fixture(scope="module")
def embedder(tiny_llama):
    model, tokenizer = tiny_llama
    return Embedder(model, tokenizer, "hs-mean")


def explicit_score(embedder: Embedder, recipe: Recipe, layers: tuple[int, ...], dev: DevSet) -> float:
    other = embedder.with_recipe(recipe.with_layers(list(layers)), postprocess="none")  # the sweep scores raw vectors
    if dev.kind == "pairs":
        first = other.encode([p[0] for p in dev.pairs], batch_size=5, show_progress_bar=False)
        second = other.encode([p[1] for p in dev.pairs], batch_size=5, show_progress_bar=False)
    else:
        first = other.encode_query(list(dev.queries), batch_size=5)
        second = other.encode_document(list(dev.documents), batch_size=5)
    return score_dev_set(dev, first, second)


@pytest.mark.parametrize("name", ["hs-mean", "va", "wva", "aligned-wva", "token-prepending"])
def test_readout_sweep_equals_explicit_layer_sets(embedder, name):
    dev = pairs_dev()
    result = sweep_layers(embedder, dev, name, batch_size=5)
    count, width = embedder.num_layers, window_width(embedder.num_layers)
    assert (result.recipe, result.metric, result.width, result.swept) == (name, "spearman", width, "readout")
    assert len(result.layer_scores) == count and len(result.window_scores) == count - width + 1
    assert all(math.isfinite(s) for s in result.layer_scores + result.window_scores)
    recipe = get_recipe(name)
    for layer in range(count):
        assert result.layer_scores[layer] == pytest.approx(explicit_score(embedder, recipe, (layer,), dev), abs=1e-6)
    window = tuple(range(1, 1 + width))
    assert result.window_scores[1] == pytest.approx(explicit_score(embedder, recipe, window, dev), abs=1e-6)
    best = int(np.argmax(result.window_scores))
    assert result.best_layers == tuple(range(best, best + width))
    assert result.best_score == result.window_scores[best]


def test_readout_sweep_runs_one_encoding_not_one_per_layer(embedder):
    dev = pairs_dev()
    distinct = list(dict.fromkeys(text for pair in dev.pairs for text in pair[:2]))
    reference = embedder.with_recipe(get_recipe("va").with_layers([0]), postprocess="none")
    before = embedder.forward_passes
    reference.encode(distinct, batch_size=5)
    encode_passes = embedder.forward_passes - before  # with_recipe copies share the runner and its count
    result = sweep_layers(embedder, dev, "va", batch_size=5)
    assert result.passes == encode_passes == math.ceil(len(distinct) / 5)


@pytest.mark.parametrize(("name", "passes"), [("va", 5), ("echo", 2 + 4)])
def test_retrieval_sweep_encodes_queries_with_the_query_prompt(embedder, name, passes):
    dev = retrieval_dev()
    result = sweep_layers(embedder, dev, name, batch_size=5)
    assert result.metric == "ndcg@10"
    assert result.passes == passes  # one template: 24 texts together; two templates: 8 queries + 16 documents
    recipe = get_recipe(name)
    for layer in (0, embedder.num_layers - 1):
        assert result.layer_scores[layer] == pytest.approx(explicit_score(embedder, recipe, (layer,), dev), abs=1e-6)


def test_sweep_combines_chunks_like_encode(tiny_llama):
    model, tokenizer = tiny_llama
    chunking = Embedder(model, tokenizer, "hs-mean", max_length=10, long_text="chunk", postprocess="none")
    dev = pairs_dev()
    _, chunked = chunking.text_tokenizer.encode([p[0] for p in dev.pairs], PROMPTS["none"], "document", "chunk")
    assert chunked > 0
    result = sweep_layers(chunking, dev, "va", batch_size=5)
    recipe = get_recipe("va")
    assert result.layer_scores[2] == pytest.approx(explicit_score(chunking, recipe, (2,), dev), abs=1e-6)
    assert result.window_scores[0] == pytest.approx(explicit_score(chunking, recipe, (0, 1), dev), abs=1e-6)


def test_kv_sweep_runs_each_rerouted_candidate(embedder):
    dev = pairs_dev()
    count = embedder.num_layers
    width = window_width(count)
    result = sweep_layers(embedder, dev, "kv", batch_size=8)
    assert result.swept == "reroute"
    assert result.passes == (count + count - width + 1) * math.ceil(24 / 8)
    kv = get_recipe("kv")
    assert result.window_scores[1] == pytest.approx(explicit_score(embedder, kv, (1, 2), dev), abs=1e-6)
    assert result.layer_scores[3] == pytest.approx(explicit_score(embedder, kv, (3,), dev), abs=1e-6)


def test_result_is_a_layer_set_and_serialises(embedder, tiny_llama):
    result = sweep_layers(embedder, pairs_dev(), "va", batch_size=8)
    assert tuple(result) == result.best_layers and len(result) == result.width
    texts = [t[0] for t in TRIPLES]
    via_result = embedder.with_recipe("va", layers=result).encode(texts)
    explicit = embedder.with_recipe("va", layers=list(result.best_layers)).encode(texts)
    np.testing.assert_array_equal(via_result, explicit)
    model, tokenizer = tiny_llama
    np.testing.assert_array_equal(Embedder(model, tokenizer, "va", layers=result).encode(texts), explicit)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["best_layers"] == list(result.best_layers) and data["window_scores"] == list(result.window_scores)
    table = result.table().splitlines()
    assert len(table) == 2 + embedder.num_layers + 1
    assert table[2 + result.best_layers[0]].endswith("* best window")


def test_ties_go_to_the_earliest_window(embedder):
    flat = DevSet("pairs", pairs=tuple((a, p, 1.0) for a, p, _ in TRIPLES))  # constant gold: every score is 0
    result = sweep_layers(embedder, flat, "hs-mean", width=3, batch_size=16)
    assert result.window_scores == (0.0, 0.0) and result.best_layers == (0, 1, 2)


def test_sweep_argument_errors(embedder):
    dev = pairs_dev()
    with pytest.raises(ValueError, match=r"width must be an int in \[1, 4\]"):
        sweep_layers(embedder, dev, width=5)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sweep_layers(embedder, dev, batch_size=0)
    with pytest.raises(TypeError, match="dev must be a DevSet"):
        sweep_layers(embedder, [("a", "b", 1.0)])
    with pytest.raises(ValueError, match="Unknown recipe"):
        sweep_layers(embedder, dev, "no-such-recipe")
    rerouted = Recipe(PROMPTS["compress"], READOUTS["value_mean"], "fallback", KVReroute(layers="auto"), name="kv-va")
    with pytest.raises(ValueError, match="cannot sweep its readout layers while its intervention's layers are 'auto'"):
        sweep_layers(embedder, dev, rerouted)


def test_sweep_result_checks_its_lengths():
    with pytest.raises(ValueError, match="window_scores must have 3 entries"):
        SweepResult("va", "value_mean", "spearman", 2, (0.1,) * 4, (0.1,) * 4, (0, 1), 0.1, 1)
