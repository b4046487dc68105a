"""Helpers shared by the `vaembed` subcommands: argument types, text input, model loading."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from vaembed.embedder import Embedder
from vaembed.recipes.layers import LayerSpec
from vaembed.recipes.postprocess import POSTPROCESS_MODES

__all__ = [
    "USER_ERRORS",
    "CommandError",
    "add_postprocess_option",
    "load_embedder",
    "load_embedder_from_args",
    "number_in",
    "parse_layers",
    "positive_int",
    "iter_texts",
    "read_texts",
]

#: Errors reported as one line on stderr (exit code 2) instead of a traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, FloatingPointError)


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


def iter_texts(source: str | None) -> Generator[str, None, None]:
    """One text per line of a UTF-8 file, or of stdin when `source` is None or `"-"`, read lazily.

    Lines end with a line feed (or CR LF); empty lines become empty texts; a final line end
    does not add one; a leading byte-order mark is dropped. The file is checked when this
    is called, opened on the first read, and each line is decoded when it is read.

    Raises:
        CommandError: The file does not exist or is not a file; (while reading) a line
            is not UTF-8 (its number is named).
    """
    if source is None or source == "-":
        return _decoded_lines(getattr(sys.stdin, "buffer", sys.stdin), "stdin")
    path = Path(source)
    if not path.is_file():
        raise CommandError(f"input file {source!r} does not exist or is not a file")
    return _file_lines(path, f"input file {source!r}")


def _file_lines(path: Path, name: str) -> Generator[str, None, None]:
    with path.open("rb") as stream:  # opened on the first read, closed at the end or when the reader is closed
        yield from _decoded_lines(stream, name)


def _decoded_lines(stream: BinaryIO | TextIO, name: str) -> Generator[str, None, None]:
    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, str):  # a text stream standing in for stdin
            line = raw.removesuffix("\n").removesuffix("\r")
        else:
            try:
                line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError as error:
                raise CommandError(
                    f"{name} line {number} is not UTF-8 text ({error.reason} at byte {error.start} of the line)"
                ) from None
        yield line.removeprefix("\ufeff") if number == 1 else line  # a byte-order mark is not text


def read_texts(source: str | None) -> list[str]:
    """All texts of `iter_texts(source)` as a list."""
    return list(iter_texts(source))


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
    except (RuntimeError, AssertionError) as error:  # torch's refusals of a device name or an absent backend
        device = kwargs.get("device")
        where = f" on device {device!r}" if device is not None else ""
        raise CommandError(f"could not load model {model!r}{where}: {error}") from None


def load_embedder_from_args(args: argparse.Namespace, layers: LayerSpec | None) -> Embedder:
    """`load_embedder` with the options that `embed` and `serve` share (model, recipe, device, dtype, ...)."""
    return load_embedder(
        args.model,
        args.recipe,
        layers,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        long_text=args.long_text,
        postprocess=args.postprocess,
    )
