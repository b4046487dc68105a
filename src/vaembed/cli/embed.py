"""`vaembed embed`: embed one text per input line, streaming, into a `.npy` file or JSON lines.

The input is read and embedded `--chunk-lines` lines at a time, so memory stays
flat however long the file is (a million lines holds one chunk of texts and
vectors at a time, plus the model). JSON lines on stdout are flushed after
each chunk. A file output is written beside its destination as a
`.<name>.<random>.part` file and moved into place only once every line is
embedded: a failure leaves any earlier file of that name as it was. A `.npy` file gets its header
(which holds the row count) after the rows are streamed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from vaembed.cli.support import (
    USER_ERRORS,
    CommandError,
    add_postprocess_option,
    iter_texts,
    load_embedder_from_args,
    parse_layers,
    positive_int,
)
from vaembed.embedder import Embedder
from vaembed.engine.tokenization import LONG_TEXT_POLICIES
from vaembed.models.registry import DEFAULT_MODEL
from vaembed.recipes.presets import DEFAULT_RECIPE, PRESET_RECIPES, get_recipe

__all__ = ["DTYPES", "NpyWriter", "add_embed_command", "chunked", "output_kind", "run_embed"]

NPY_SUFFIXES = (".npy",)
JSON_SUFFIXES = (".jsonl", ".json")
DTYPES = ("float32", "float16", "bfloat16")
NPY_HEADER_BYTES = 128
"""Room kept for a `.npy` version 1.0 header (magic, length, dict); enough for any row count."""


def output_kind(output: str | None) -> str:
    """`"stdout"`, `"npy"` or `"jsonl"` for `--output`.

    Raises:
        CommandError: An unknown suffix, or a folder that does not exist.
    """
    if output is None:
        return "stdout"
    suffix = Path(output).suffix.lower()
    if suffix in NPY_SUFFIXES:
        kind = "npy"
    elif suffix in JSON_SUFFIXES:
        kind = "jsonl"
    else:
        raise CommandError(f"output file {output!r} must end with .npy, .jsonl or .json")
    parent = Path(output).parent
    if not parent.is_dir():
        raise CommandError(f"output folder {str(parent)!r} does not exist")
    return kind


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of at most `size` items (never an empty list)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class NpyWriter:
    """Streams float32 rows of one width into a `.npy` file; the header is written last.

    Args:
        stream: A binary file opened for writing, positioned at 0.
        dimension: The row width.
    """

    def __init__(self, stream: BinaryIO, dimension: int) -> None:
        self.stream, self.dimension, self.rows = stream, dimension, 0
        stream.write(self._header())

    def _header(self) -> bytes:
        described = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({self.rows}, {self.dimension}), }}"
        body = described.ljust(NPY_HEADER_BYTES - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")

    def write(self, rows: np.ndarray) -> None:
        """Append rows of shape `(n, dimension)`."""
        self.stream.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        """Write the header with the final row count."""
        self.stream.seek(0)
        self.stream.write(self._header())


def _write_json_lines(stream: TextIO, start: int, texts: list[str], embeddings: np.ndarray) -> None:
    for index, (text, vector) in enumerate(zip(texts, embeddings, strict=True), start=start):
        stream.write(json.dumps({"index": index, "text": text, "embedding": vector.tolist()}) + "\n")


def _encode_chunk(embedder: Embedder, texts: list[str], start: int, args: argparse.Namespace) -> np.ndarray:
    """Embed one chunk; an error names the input lines (1-based) instead of the chunk's indices."""
    try:
        vectors = embedder.encode(
            texts,
            role=args.role,
            prompt=args.prompt,
            batch_size=args.batch_size,
            normalize=not args.no_normalize,
            show_progress_bar=False,
        )
    except USER_ERRORS as error:
        message = re.sub(r"texts\[(\d+)\]", lambda m: f"input line {start + int(m.group(1)) + 1}", str(error))
        raise CommandError(f"input lines {start + 1}-{start + len(texts)}: {message}") from None
    return np.asarray(vectors, dtype=np.float32)


def run_embed(args: argparse.Namespace) -> int:
    """Embed one text per input line and write the embeddings, one chunk of lines at a time."""
    get_recipe(args.recipe)
    layers = parse_layers(args.layers) if args.layers is not None else None
    kind = output_kind(args.output)
    texts = iter_texts(args.input)
    if args.prompt is not None:
        get_recipe(args.recipe).prompt.with_instruction(args.prompt, args.role)  # a bad prompt fails before loading
    with closing(texts):  # closes the input file on every exit
        embedder = load_embedder_from_args(args, layers)
        chunks = chunked(texts, args.chunk_lines)
        if kind == "stdout":
            return _write_stdout(chunks, embedder, args)
        output = Path(args.output)
        handle, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
        os.close(handle)
        part = Path(name)  # a name of its own: runs writing the same output do not share it
        try:
            count = _write_file(part, kind, chunks, embedder, args)
            os.replace(part, output)
        finally:
            part.unlink(missing_ok=True)
    print(f"wrote {count} embeddings of dimension {embedder.dimension} to {args.output}", file=sys.stderr)
    return 0


def _write_stdout(chunks: Iterator[list[str]], embedder: Embedder, args: argparse.Namespace) -> int:
    """JSON lines on stdout, flushed per chunk; a reader that stops early (`| head`) ends the run quietly."""
    start = 0
    try:
        for chunk in chunks:
            _write_json_lines(sys.stdout, start, chunk, _encode_chunk(embedder, chunk, start, args))
            sys.stdout.flush()
            start += len(chunk)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        os.close(devnull)
    return 0


def _write_file(
    part: Path, kind: str, chunks: Iterator[list[str]], embedder: Embedder, args: argparse.Namespace
) -> int:
    start = 0
    if kind == "npy":
        with open(part, "wb") as stream:
            writer = NpyWriter(stream, embedder.dimension)
            for chunk in chunks:
                writer.write(_encode_chunk(embedder, chunk, start, args))
                start += len(chunk)
            writer.close()
        return start
    with open(part, "w", encoding="utf-8") as text_stream:
        for chunk in chunks:
            _write_json_lines(text_stream, start, chunk, _encode_chunk(embedder, chunk, start, args))
            start += len(chunk)
    return start


def add_embed_command(commands: argparse._SubParsersAction) -> None:
    """Add `vaembed embed` to the subcommands."""
    recipes = ", ".join(PRESET_RECIPES)
    embed = commands.add_parser("embed", help="embed one text per input line (streaming)")
    embed.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"preset, model folder, .gguf file or hub id (default {DEFAULT_MODEL})"
    )
    embed.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"one of {recipes} (default {DEFAULT_RECIPE})")
    embed.add_argument("--layers", help="layer indices such as '15,16,17', or a named set such as 'fallback'")
    add_postprocess_option(embed)
    embed.add_argument(
        "--role", choices=("document", "query"), default="document", help="prompt role (default document)"
    )
    embed.add_argument(
        "--prompt",
        help="an instruction: a template holding {text}, or a prefix put before each text (inside the recipe's prompt)",
    )
    embed.add_argument("--input", help="UTF-8 text file, one text per line (default stdin; '-' for stdin)")
    embed.add_argument(
        "--output", help="a .npy file, or a .jsonl/.json file for JSON lines (default JSON lines on stdout)"
    )
    embed.add_argument("--device", help="cpu, cuda, cuda:1, mps, ... (default CUDA when available, else CPU)")
    embed.add_argument("--dtype", choices=DTYPES, help="model weights' dtype (default bfloat16 on CUDA, else float32)")
    embed.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default 32)")
    embed.add_argument(
        "--chunk-lines",
        type=positive_int,
        default=1024,
        help="input lines read and embedded at a time; memory grows with it (default 1024)",
    )
    embed.add_argument("--max-length", type=positive_int, help="maximum tokens per text, prompt included")
    embed.add_argument(
        "--long-text", choices=LONG_TEXT_POLICIES, default="truncate", help="longer texts (default truncate)"
    )
    embed.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the embeddings")
