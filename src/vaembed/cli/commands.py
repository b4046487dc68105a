"""The `vaembed` command: list preset models, embed texts, run the search demo.

`vaembed models` lists the preset models and how to install them;
`vaembed embed` embeds one text per input line, streaming, into a `.npy` file or JSON lines (see `cli.embed`);
`vaembed demo` runs a small semantic search over a bundled corpus;
`vaembed calibrate` and `vaembed sweep` choose layers (see `cli_calibration`);
`vaembed serve` runs an OpenAI-compatible embeddings server (see `cli_serve`).
"""

from __future__ import annotations

import argparse
import sys

from vaembed import __version__
from vaembed.cli.calibration import add_calibration_commands, run_calibrate, run_sweep
from vaembed.cli.embed import add_embed_command, run_embed
from vaembed.cli.serve import add_serve_command, run_serve
from vaembed.cli.support import USER_ERRORS, CommandError, load_embedder, parse_layers, positive_int, read_texts
from vaembed.models.registry import DEFAULT_MODEL, PRESETS
from vaembed.recipes.presets import DEFAULT_RECIPE, PRESET_RECIPES, get_recipe

__all__ = ["CommandError", "main", "build_parser", "parse_layers", "read_texts"]

EXIT_ERROR = 2


def run_models() -> int:
    """Print every preset model: name, whether installed, description, licence, install command."""
    for preset in PRESETS.values():
        status = "installed" if preset.is_installed() else "not installed"
        default = ", default" if preset.name == DEFAULT_MODEL else ""
        print(f"{preset.name} ({status}{default})")
        print(f"    {preset.description}")
        print(f"    licence: {preset.licence}")
        print(f"    install: {preset.install}")
    print(f"recipes: {', '.join(PRESET_RECIPES)} (default {DEFAULT_RECIPE})")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """Rank the bundled corpus for each query and print the top documents."""
    from vaembed.cli.demo import answer_hits, load_corpus, search

    get_recipe(args.recipe)
    corpus = load_corpus()
    defaults = not args.query
    queries = [item.query for item in corpus.queries] if defaults else list(args.query)
    print(f"model: {args.model}")
    print(f"recipe: {args.recipe}")
    print(f"corpus: {len(corpus.documents)} documents ({corpus.licence})")
    embedder = load_embedder(args.model, args.recipe)
    results = search(embedder, corpus.documents, queries, args.top_k)
    for query, ranking in zip(queries, results, strict=True):
        print()
        print(f"query: {query}")
        for position, (index, score) in enumerate(ranking, start=1):
            print(f"  {position}. {score:.3f}  {corpus.documents[index]}")
    if defaults:
        hits = answer_hits(results, [item.answer for item in corpus.queries])
        print()
        print(f"{hits} of {len(queries)} default queries rank their answer first")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `vaembed` command."""
    parser = argparse.ArgumentParser(
        prog="vaembed", description="Training-free text embeddings from frozen decoder-only LLMs."
    )
    parser.add_argument("--version", action="version", version=f"vaembed {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    commands.add_parser("models", help="list the preset models and how to install them")

    add_embed_command(commands)

    recipes = ", ".join(PRESET_RECIPES)
    demo = commands.add_parser("demo", help="semantic search over a small bundled corpus")
    demo.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"preset, model folder, .gguf file or hub id (default {DEFAULT_MODEL})"
    )
    demo.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"one of {recipes} (default {DEFAULT_RECIPE})")
    demo.add_argument("--query", action="append", help="a query (repeatable; default the bundled queries)")
    demo.add_argument("--top-k", type=positive_int, default=3, help="documents shown per query (default 3)")
    add_calibration_commands(commands)
    add_serve_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `vaembed` command.

    Args:
        argv: Arguments without the program name; default `sys.argv[1:]`.

    Returns:
        The exit code: 0 on success, 2 on a usage error or a problem with the
        inputs (reported as one line on stderr).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        code = exit_request.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    try:
        if args.command == "models":
            return run_models()
        if args.command == "embed":
            return run_embed(args)
        if args.command == "calibrate":
            return run_calibrate(args)
        if args.command == "sweep":
            return run_sweep(args)
        if args.command == "serve":
            return run_serve(args)
        return run_demo(args)
    except (CommandError, *USER_ERRORS) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"vaembed {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
