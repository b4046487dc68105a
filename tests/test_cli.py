"""The `vaembed` command: models, embed (files, stdin, JSON lines), errors, and the demo."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from vaembed import DEFAULT_MODEL, DEFAULT_RECIPE, PRESETS, Embedder, __version__
from vaembed.cli import main, parse_layers, read_texts
from vaembed.cli.demo import answer_hits, load_corpus, rank, search

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Embeddings map texts to vectors; similar texts land close together.",
    "A journey of a thousand miles begins with a single step.",
]
RANKED_LINE = re.compile(r"^  (\d+)\. (-?\d\.\d{3})  (.+)$")


def write_input(tmp_path, texts=TEXTS):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def expected(folder, recipe="hs-mean", layers=None, **kwargs):
    return Embedder.from_pretrained(folder, recipe, layers).encode(TEXTS, **kwargs)


def embed_npy(folder, tmp_path, *options, name="out.npy"):
    output = tmp_path / name
    code = main(
        ["embed", "--model", str(folder), "--input", str(write_input(tmp_path)), "--output", str(output), *options]
    )
    assert code == 0
    return np.load(output, allow_pickle=False)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vaembed {__version__}"


def test_models_lists_every_preset_with_install_command(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert len(PRESETS) == 4
    for preset in PRESETS.values():
        status = "installed" if preset.is_installed() else "not installed"
        assert re.search(rf"^{re.escape(preset.name)} \({status}[,)]", out, re.MULTILINE)
        assert f"    install: {preset.install}\n" in out
        assert f"    licence: {preset.licence}\n" in out
        assert preset.description in out
    assert f"{DEFAULT_MODEL} (installed, default)" in out or not PRESETS[DEFAULT_MODEL].is_installed()


def test_read_texts_keeps_empty_lines_without_trailing_extra(tmp_path, monkeypatch):
    path = tmp_path / "in.txt"
    path.write_text("a\n\nb\n", encoding="utf-8")
    assert read_texts(str(path)) == ["a", "", "b"]
    path.write_text("a\n\n", encoding="utf-8")
    assert read_texts(str(path)) == ["a", ""]
    path.write_text("a\r\nb", encoding="utf-8")
    assert read_texts(str(path)) == ["a", "b"]
    monkeypatch.setattr("sys.stdin", io.StringIO("x\ny\n"))
    assert read_texts("-") == ["x", "y"]


def test_parse_layers():
    assert parse_layers("15,16,17") == [15, 16, 17]
    assert parse_layers(" -1 ") == [-1]
    assert parse_layers("fallback") == "fallback"


def test_embed_npy_matches_the_api(tiny_model_folder, tmp_path):
    got = embed_npy(tiny_model_folder, tmp_path, "--recipe", "hs-mean")
    want = expected(tiny_model_folder, "hs-mean")
    assert got.dtype == np.float32 and got.shape == want.shape == (4, 32)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embed_defaults_to_the_default_recipe(tiny_model_folder, tmp_path):
    got = embed_npy(tiny_model_folder, tmp_path)
    want = expected(tiny_model_folder, DEFAULT_RECIPE)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_embed_options_reach_the_embedder(tiny_model_folder, tmp_path):
    got = embed_npy(
        tiny_model_folder, tmp_path, "--recipe", "va", "--layers", "1,2", "--no-normalize", "--batch-size", "3"
    )
    want = expected(tiny_model_folder, "va", [1, 2], normalize=False)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)
    other = embed_npy(tiny_model_folder, tmp_path, "--recipe", "va", "--layers", "3", name="other.npy")
    assert not np.allclose(other, got / np.linalg.norm(got, axis=1, keepdims=True), atol=1e-3)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_embed_json_lines_round_trip(tiny_model_folder, tmp_path, suffix):
    output = tmp_path / f"out{suffix}"
    code = main(
        ["embed", "--model", str(tiny_model_folder), "--recipe", "hs-mean", "--input", str(write_input(tmp_path))]
        + ["--output", str(output)]
    )
    assert code == 0
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in records] == list(range(len(TEXTS)))
    assert [r["text"] for r in records] == TEXTS
    got = np.array([r["embedding"] for r in records], dtype=np.float32)
    assert np.array_equal(got, embed_npy(tiny_model_folder, tmp_path, "--recipe", "hs-mean"))
    np.testing.assert_allclose(got, expected(tiny_model_folder, "hs-mean"), atol=1e-5, rtol=0)


@pytest.mark.parametrize("input_args", [[], ["--input", "-"]])
def test_embed_stdin_to_stdout(tiny_model_folder, monkeypatch, capsys, input_args):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(TEXTS) + "\n"))
    assert main(["embed", "--model", str(tiny_model_folder), "--recipe", "hs-mean", *input_args]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["index"], r["text"]) for r in records] == list(enumerate(TEXTS))
    got = np.array([r["embedding"] for r in records], dtype=np.float32)
    np.testing.assert_allclose(got, expected(tiny_model_folder, "hs-mean"), atol=1e-5, rtol=0)


@pytest.mark.parametrize("recipe", ["echo", "kv"])
def test_query_role_uses_the_query_prompt(tiny_model_folder, tmp_path, recipe):
    document = embed_npy(tiny_model_folder, tmp_path, "--recipe", recipe, name="doc.npy")
    query = embed_npy(tiny_model_folder, tmp_path, "--recipe", recipe, "--role", "query", name="query.npy")
    assert np.abs(document - query).max() > 1e-3
    np.testing.assert_allclose(document, expected(tiny_model_folder, recipe, role="document"), atol=1e-5, rtol=0)
    np.testing.assert_allclose(query, expected(tiny_model_folder, recipe, role="query"), atol=1e-5, rtol=0)


def run_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err
    return err


def test_unknown_recipe_is_a_clear_error(tiny_model_folder, tmp_path, capsys):
    err = run_error(
        capsys, ["embed", "--model", str(tiny_model_folder), "--recipe", "nope", "--input", str(write_input(tmp_path))]
    )
    assert len(err.splitlines()) == 1
    assert "Unknown recipe 'nope'" in err and "hs-mean" in err


def test_missing_input_file_is_a_clear_error(tiny_model_folder, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    err = run_error(capsys, ["embed", "--model", str(tiny_model_folder), "--input", str(missing)])
    assert len(err.splitlines()) == 1
    assert str(missing) in err and "does not exist" in err


def test_bad_output_and_layers_are_clear_errors(tiny_model_folder, tmp_path, capsys):
    base = ["embed", "--model", str(tiny_model_folder), "--input", str(write_input(tmp_path))]
    assert ".npy" in run_error(capsys, [*base, "--output", str(tmp_path / "out.txt")])
    assert "out of range" in run_error(capsys, [*base, "--layers", "9"])
    assert "--layers" in run_error(capsys, [*base, "--layers", "1,x"])
    assert "missing-model" in run_error(
        capsys, ["embed", "--model", str(tmp_path / "missing-model"), "--input", str(write_input(tmp_path))]
    )
    assert "batch-size" in run_error(capsys, [*base, "--batch-size", "0"])


def test_preset_not_installed_names_the_install_command(tmp_path, capsys, absent_preset):
    err = run_error(capsys, ["embed", "--model", absent_preset.name, "--input", str(write_input(tmp_path))])
    assert len(err.splitlines()) == 1
    assert absent_preset.name in err and absent_preset.install in err


def test_demo_corpus_is_well_formed():
    corpus = load_corpus()
    assert 20 <= len(corpus.documents) <= 30 and len(set(corpus.documents)) == len(corpus.documents)
    assert len(corpus.queries) == 5
    assert len({q.answer for q in corpus.queries}) == 5
    assert all(0 <= q.answer < len(corpus.documents) for q in corpus.queries)
    assert corpus.licence.startswith("CC0-1.0")


def test_rank_orders_by_cosine():
    documents = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    queries = np.array([[0.0, 1.0], [3.0, 0.1]])
    result = rank(documents, queries, top_k=2)
    assert [[i for i, _ in row] for row in result] == [[1, 2], [0, 2]]
    assert result[0][0][1] == pytest.approx(1.0) and result[0][1][1] == pytest.approx(np.sqrt(0.5))
    assert len(rank(documents, queries, top_k=10)[0]) == 3
    assert answer_hits(result, [1, 2]) == 1


def test_demo_with_custom_queries(tiny_model_folder, capsys):
    assert (
        main(
            [
                "demo",
                "--model",
                str(tiny_model_folder),
                "--recipe",
                "hs-mean",
                "--query",
                "a",
                "--query",
                "b",
                "--top-k",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"model: {tiny_model_folder}" in out and "recipe: hs-mean" in out
    assert out.count("query: ") == 2 and "default queries" not in out
    ranked = [RANKED_LINE.match(line) for line in out.splitlines() if RANKED_LINE.match(line)]
    assert [int(m.group(1)) for m in ranked] == [1, 2, 1, 2]
    documents = load_corpus().documents
    assert all(m.group(3) in documents for m in ranked)
    scores = [float(m.group(2)) for m in ranked]
    assert scores[0] >= scores[1] and scores[2] >= scores[3]


@pytest.mark.real_model
def test_demo_default_recipe_ranks_answers_first(real_embedder):
    corpus = load_corpus()
    embedder = real_embedder.with_recipe(DEFAULT_RECIPE)
    results = search(embedder, corpus.documents, [q.query for q in corpus.queries], top_k=3)
    assert all(len(row) == 3 and row[0][1] >= row[1][1] >= row[2][1] for row in results)
    assert answer_hits(results, [q.answer for q in corpus.queries]) >= 4


@pytest.mark.real_model
def test_demo_command_prints_ranked_results(real_embedder, capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    corpus = load_corpus()
    assert f"model: {DEFAULT_MODEL}" in out and f"recipe: {DEFAULT_RECIPE}" in out
    blocks = out.split("\nquery: ")[1:]
    assert len(blocks) == len(corpus.queries)
    firsts = 0
    for block, item in zip(blocks, corpus.queries, strict=True):
        lines = block.splitlines()
        assert lines[0] == item.query
        ranked = [RANKED_LINE.match(line) for line in lines[1:4]]
        assert all(ranked) and [int(m.group(1)) for m in ranked] == [1, 2, 3]
        assert all(m.group(3) in corpus.documents for m in ranked)
        firsts += ranked[0].group(3) == corpus.documents[item.answer]
    assert firsts >= 4
    assert f"{firsts} of {len(corpus.queries)} default queries rank their answer first" in out
