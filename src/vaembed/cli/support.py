"""Helpers shared by the `vaembed` subcommands: argument types, text input, model loading."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaembed.embedder import Embedder
from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.postprocess import POSTPROCESS_MODES

__all__ = [
    "CommandError",
    "add_postprocess_option",
    "load_embedder",
    "number_in",
    "parse_layers",
    "positive_int",
    "read_texts",
]


class CommandError(Exception):
    """A problem with the command's arguments or files, reported without a traceback."""


def positive_int(text: str) -> int:
    """Argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def number_in(low: float, high: float, kind: type[int] | type[float] = int) -> Callable[[str], Any]:
    """Argparse type: an int (or float) in `[low, high]`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], not {text!r}")
        return value

    return parse


def parse_layers(text: str) -> LayerSpec:
    """Parse `--layers`: comma-separated indices (`"15,16,17"`) or a named set (`"fallback"`).

    Raises:
        CommandError: The text is empty or mixes names and indices.
    """
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise CommandError(f"--layers {text!r}: give comma-separated layer indices, e.g. '15,16,17', or a name")
    try:
        return [int(part) for part in parts]
    except ValueError:
        if len(parts) == 1:
            return parts[0]
        raise CommandError(f"--layers {text!r}: give comma-separated layer indices or a single name") from None


def read_texts(source: str | None) -> list[str]:
    """Read one text per line from a file, or from stdin when `source` is None or `"-"`.

    Empty lines become empty texts; a final newline does not add one.

    Raises:
        CommandError: The file does not exist, is not a file, or is not UTF-8 text.
    """
    if source is None or source == "-":
        return sys.stdin.read().splitlines()
    path = Path(source)
    if not path.is_file():
        raise CommandError(f"input file {source!r} does not exist or is not a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CommandError(f"input file {source!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None


def add_postprocess_option(parser: argparse.ArgumentParser) -> None:
    """Add `--postprocess` (the recipe's own choice when not given)."""
    parser.add_argument(
        "--postprocess",
        choices=POSTPROCESS_MODES,
        help="subtract the model's mean embedding over a generic corpus (center), or also scale each dimension "
        "(standardize), before normalising (default: the recipe's own choice)",
    )


def load_embedder(model: str, recipe: str, layers: LayerSpec | None = None, **kwargs: Any) -> Embedder:
    """Load a model, reporting a load failure as a `CommandError`."""
    try:
        return Embedder.from_pretrained(model, recipe, layers, **kwargs)
    except OSError as error:
        raise CommandError(f"could not load model {model!r}: {error}") from None
