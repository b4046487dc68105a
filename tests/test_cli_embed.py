"""`vaembed embed` streams: chunk by chunk, atomic file outputs, line-numbered errors, flat memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from vaembed import Embedder
from vaembed.cli import main
from vaembed.cli.embed import NpyWriter, chunked

TEXTS = [f"line {i}: {'a fox ' * (i % 5)}jumps over dog number {i}" for i in range(11)]


def write_lines(path, texts=TEXTS):
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def run(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr()


class LineReader:
    """A binary stdin that records how many JSON lines stdout held when each input line was read."""

    def __init__(self, texts, stdout):
        self.texts, self.stdout, self.seen = texts, stdout, []

    def __iter__(self):
        for text in self.texts:
            self.seen.append(self.stdout.getvalue().count("\n"))
            yield (text + "\n").encode()


def test_stdout_gets_each_chunk_before_the_next_is_read(tiny_model_folder, monkeypatch):
    stdout = io.StringIO()
    reader = LineReader(TEXTS, stdout)
    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": reader})())
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["embed", "--model", str(tiny_model_folder), "--recipe", "hs-mean", "--chunk-lines", "4"]) == 0
    assert reader.seen == [0] * 4 + [4] * 4 + [8] * 3  # chunk k is read after chunk k-1 was written
    records = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [(r["index"], r["text"]) for r in records] == list(enumerate(TEXTS))
    whole = Embedder.from_pretrained(tiny_model_folder, "hs-mean").encode(TEXTS)
    np.testing.assert_allclose(np.array([r["embedding"] for r in records]), whole, atol=1e-5)


@pytest.mark.parametrize("suffix", [".npy", ".jsonl"])
def test_chunks_are_one_encode_each_and_give_the_whole_files_vectors(tiny_model_folder, tmp_path, monkeypatch, suffix):
    calls = []
    original = Embedder.encode

    def counting(self, texts, **kwargs):
        calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(Embedder, "encode", counting)
    output = tmp_path / f"out{suffix}"
    source = str(write_lines(tmp_path / "in.txt"))
    argv = ["embed", "--model", str(tiny_model_folder), "--input", source, "--output", str(output)]
    assert main([*argv, "--chunk-lines", "3"]) == 0
    assert calls == [3, 3, 3, 2]
    if suffix == ".npy":
        got = np.load(output, allow_pickle=False)
        assert got.dtype == np.float32 and got.shape[0] == len(TEXTS)
    else:
        records = [json.loads(line) for line in output.read_text().splitlines()]
        assert [r["index"] for r in records] == list(range(len(TEXTS)))
        got = np.array([r["embedding"] for r in records], dtype=np.float32)
    monkeypatch.setattr(Embedder, "encode", original)
    np.testing.assert_allclose(got, Embedder.from_pretrained(tiny_model_folder).encode(TEXTS), atol=1e-5)
    assert not (tmp_path / f"out{suffix}.part").exists()


def test_prompt_layers_dtype_and_device_reach_the_embedder(tiny_model_folder, tmp_path):
    output = tmp_path / "out.npy"
    source = str(write_lines(tmp_path / "in.txt"))
    options = ["--recipe", "va", "--layers", "2,3", "--prompt", "Represent the question: ", "--role", "query"]
    argv = ["embed", "--model", str(tiny_model_folder), "--input", source, "--output", str(output), *options]
    assert main([*argv, "--device", "cpu", "--dtype", "bfloat16"]) == 0
    got = np.load(output)
    api = Embedder.from_pretrained(tiny_model_folder, "va", [2, 3], device="cpu", dtype=torch.bfloat16)
    assert api.model.dtype == torch.bfloat16
    want = api.encode(TEXTS, role="query", prompt="Represent the question: ")
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert main(argv) == 0  # float32 weights: other vectors
    assert not np.allclose(np.load(output), got, atol=1e-3)
    unprompted = Embedder.from_pretrained(tiny_model_folder, "va", [2, 3]).encode(TEXTS, role="query")
    assert not np.allclose(np.load(output), unprompted, atol=1e-4)


def test_a_failure_leaves_the_earlier_output_and_names_the_input_line(tiny_model_folder, tmp_path, capsys):
    output = tmp_path / "out.npy"
    np.save(output, np.ones((2, 3), np.float32))
    texts = ["short", "also short", "tiny", "small", "word " * 200, "after"]
    source = str(write_lines(tmp_path / "in.txt", texts))
    argv = ["embed", "--model", str(tiny_model_folder), "--input", source, "--output", str(output)]
    code, captured = run(capsys, [*argv, "--chunk-lines", "2", "--long-text", "error", "--max-length", "64"])
    assert code == 2
    assert "input line 5 has" in captured.err and "input lines 5-6" in captured.err and "texts[" not in captured.err
    np.testing.assert_array_equal(np.load(output), np.ones((2, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.npy"]


def test_a_line_that_is_not_utf8_is_named(tiny_model_folder, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_bytes(b"fine\r\nalso fine\n\xff\xfe broken\nlast\n")
    output = tmp_path / "out.jsonl"
    output.write_text("earlier\n")
    argv = ["embed", "--model", str(tiny_model_folder), "--input", str(source), "--output", str(output)]
    code, captured = run(capsys, [*argv, "--chunk-lines", "1"])
    assert code == 2 and "line 3 is not UTF-8" in captured.err
    assert output.read_text() == "earlier\n" and not (tmp_path / "out.jsonl.part").exists()


def test_crlf_lines_and_an_empty_input(tiny_model_folder, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_bytes(b"one\r\ntwo\r\n\r\nfour")
    output = tmp_path / "out.jsonl"
    assert main(["embed", "--model", str(tiny_model_folder), "--input", str(source), "--output", str(output)]) == 0
    assert [json.loads(line)["text"] for line in output.read_text().splitlines()] == ["one", "two", "", "four"]
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    npy = tmp_path / "out.npy"
    assert main(["embed", "--model", str(tiny_model_folder), "--input", str(empty), "--output", str(npy)]) == 0
    dimension = Embedder.from_pretrained(tiny_model_folder).dimension
    assert np.load(npy).shape == (0, dimension)
    assert "wrote 0 embeddings" in capsys.readouterr().err


def test_a_bad_prompt_device_or_dtype_is_one_line_before_any_output(tiny_model_folder, tmp_path, capsys):
    source = str(write_lines(tmp_path / "in.txt"))
    base = ["embed", "--model", str(tiny_model_folder), "--input", source]
    code, captured = run(capsys, [*base, "--prompt", "{text} {text}"])
    assert code == 2 and "holds '{text}' more than once" in captured.err and captured.out == ""
    code, captured = run(capsys, [*base, "--device", "gpu"])
    assert code == 2 and "on device 'gpu'" in captured.err and len(captured.err.splitlines()) == 1
    assert captured.out == ""
    code, captured = run(capsys, [*base, "--dtype", "int3"])
    assert code == 2 and "--dtype" in captured.err


def test_a_byte_order_mark_is_not_text(tiny_model_folder, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes("\ufefffirst\nsecond\n".encode())
    output = tmp_path / "out.jsonl"
    assert main(["embed", "--model", str(tiny_model_folder), "--input", str(source), "--output", str(output)]) == 0
    assert [json.loads(line)["text"] for line in output.read_text().splitlines()] == ["first", "second"]


def test_a_reader_that_stops_early_ends_the_run_quietly(tiny_model_folder):
    command = [sys.executable, "-m", "vaembed.cli", "embed", "--model", str(tiny_model_folder), "--chunk-lines", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdin.write(b"".join(f"text {i}\n".encode() for i in range(400)))
    process.stdin.close()
    first = json.loads(process.stdout.readline())
    process.stdout.close()  # as `| head -1` does
    assert process.wait(timeout=120) == 0
    error = process.stderr.read().decode()
    assert first["index"] == 0 and "Broken pipe" not in error and "Exception ignored" not in error, error


def test_npy_writer_header_holds_any_row_count(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as stream:
        writer = NpyWriter(stream, 3)
        writer.write(np.arange(6, dtype=np.float32).reshape(2, 3))
        writer.rows = 10**15  # the header's room: the longest count still fits
        header = writer._header()
        writer.rows = 2
        writer.close()
    assert len(header) == 128 and header.endswith(b"\n")
    np.testing.assert_array_equal(np.load(path), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_chunked():
    assert list(chunked(iter("abcdefg"), 3)) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert list(chunked([], 3)) == []


def peak_bytes(folder, tmp_path, lines):
    source = tmp_path / f"in-{lines}.txt"
    source.write_text("".join(f"text number {i} about foxes\n" for i in range(lines)), encoding="utf-8")
    output = tmp_path / f"out-{lines}.npy"
    tracemalloc.start()
    try:
        code = main(["embed", "--model", str(folder), "--input", str(source), "--output", str(output),
                     "--chunk-lines", "500", "--batch-size", "250"])  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0 and np.load(output).shape[0] == lines
    return peak


class ConstantEmbedder:
    """Stands in for the model in the memory test, so that it measures the command's own buffering."""

    dimension = 64

    def encode(self, texts, **kwargs):
        return np.full((len(texts), self.dimension), 0.125, np.float32)


def test_memory_does_not_grow_with_the_input(tmp_path, monkeypatch):
    monkeypatch.setattr("vaembed.cli.embed.load_embedder_from_args", lambda *args, **kwargs: ConstantEmbedder())
    small = peak_bytes("unused", tmp_path, 2_000)
    large = peak_bytes("unused", tmp_path, 40_000)
    assert large < 1.3 * small, (small, large)
