"""The `vaembed` command line: models, embed, demo, calibrate, sweep, serve."""

from __future__ import annotations

from vaembed.cli.commands import build_parser, main
from vaembed.cli.support import CommandError, parse_layers, read_texts

__all__ = ["CommandError", "build_parser", "main", "parse_layers", "read_texts"]
