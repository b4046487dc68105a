"""`vaembed serve`: an OpenAI-compatible embeddings endpoint on uvicorn.

The server listens at once and the model loads (and, for `layers="auto"`,
finds its calibration) behind it: until it is ready `GET /health` answers 503
with `"status": "loading"` and embedding requests get 503 with `Retry-After`.
Should loading fail, the error is printed and the command exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from vaembed.cli.support import (
    CommandError,
    add_postprocess_option,
    load_embedder_from_args,
    number_in,
    parse_layers,
    positive_int,
)
from vaembed.engine.tokenization import LONG_TEXT_POLICIES
from vaembed.models.registry import DEFAULT_MODEL
from vaembed.recipes.presets import DEFAULT_RECIPE, PRESET_RECIPES, get_recipe

__all__ = ["API_KEY_ENV", "add_serve_command", "run_serve"]

API_KEY_ENV = "VAEMBED_API_KEY"


def add_serve_command(commands: Any) -> None:
    """Add the `serve` subcommand to an argparse subparsers object."""
    serve = commands.add_parser("serve", help="serve POST /v1/embeddings (OpenAI-compatible) with uvicorn")
    serve.add_argument("--model", default=DEFAULT_MODEL, help=f"model to load (default {DEFAULT_MODEL})")
    serve.add_argument(
        "--recipe", default=DEFAULT_RECIPE, help=f"one of {', '.join(PRESET_RECIPES)} (default {DEFAULT_RECIPE})"
    )
    serve.add_argument("--layers", help="layer indices such as '15,16,17', or a named set such as 'fallback'")
    add_postprocess_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=number_in(0, 65535, int), default=8000, help="port (default 8000)")
    serve.add_argument("--served-model-name", help="the name clients send as 'model' (default --model)")
    serve.add_argument("--device", help="cpu, cuda, cuda:1, ... (default CUDA when available)")
    serve.add_argument("--dtype", help="float32, bfloat16, float16 (default bfloat16 on CUDA, float32 on CPU)")
    serve.add_argument("--max-length", type=positive_int, help="most tokens per input, prompt included")
    serve.add_argument(
        "--long-text",
        choices=LONG_TEXT_POLICIES,
        default="error",
        help="longer inputs: refused with a 400 (default), truncated, or embedded in chunks",
    )
    serve.add_argument("--max-inputs", type=positive_int, default=2048, help="most strings per request (default 2048)")
    serve.add_argument(
        "--max-request-tokens", type=positive_int, default=300_000, help="most tokens per request (default 300000)"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=16 * 1024 * 1024,
        help="largest request body in bytes, refused with 413 above it (default 16 MiB)",
    )
    serve.add_argument(
        "--max-batch-texts", type=positive_int, default=128, help="most texts merged into one batch (default 128)"
    )
    serve.add_argument(
        "--batch-wait-ms",
        type=number_in(0, 10_000, float),
        default=5.0,
        help="how long a lone request waits for others (default 5)",
    )
    serve.add_argument("--batch-size", type=positive_int, default=32, help="sequences per forward pass (default 32)")
    serve.add_argument("--query-prompt", help="instruction for requests with input_type 'query' ('{text}' or a prefix)")
    serve.add_argument("--document-prompt", help="instruction for other requests ('{text}' or a prefix)")
    serve.add_argument(
        "--max-queue",
        type=positive_int,
        help="most texts waiting or being embedded; past it requests get 429 with Retry-After (default unbounded)",
    )
    serve.add_argument(
        "--max-queue-tokens",
        type=positive_int,
        help="most tokens waiting or being embedded; past it requests get 429 with Retry-After (default unbounded)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeatable; '*' for any; default none)",
    )
    serve.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' (default ${API_KEY_ENV}, else none)")
    serve.add_argument(
        "--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info", help="uvicorn's"
    )


def _check_model_path(model: str) -> None:
    """Refuse a model file or folder that does not exist before listening (presets and hub ids load later)."""
    looks_like_path = model.endswith(".gguf") or model.startswith(("/", "./", "../", "~"))
    if looks_like_path and not Path(model).expanduser().exists():
        raise CommandError(f"could not load model {model!r}: no such file or folder")


def _access_log(level: str) -> None:
    """Print each request's log line (with its request id) at uvicorn's level."""
    from vaembed.connectors.serving.observability import ACCESS_LOGGER

    logger = logging.getLogger(ACCESS_LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s vaembed: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def run_serve(args: argparse.Namespace) -> int:
    """Listen at once, load the model behind the server, then serve until interrupted."""
    try:
        import uvicorn

        from vaembed.connectors.serving import ServerSettings, create_app
    except ImportError as error:
        raise CommandError(f'vaembed serve needs the serve extra: pip install "vaembed[serve]" ({error})') from None
    get_recipe(args.recipe)
    layers = parse_layers(args.layers) if args.layers is not None else None
    _check_model_path(args.model)
    settings = ServerSettings(
        served_model_name=args.served_model_name or args.model,
        max_inputs=args.max_inputs,
        max_request_tokens=args.max_request_tokens,
        max_body_bytes=args.max_body_bytes,
        max_batch_texts=args.max_batch_texts,
        batch_wait_ms=args.batch_wait_ms,
        batch_size=args.batch_size,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        query_prompt=args.query_prompt,
        document_prompt=args.document_prompt,
        max_queue_texts=args.max_queue,
        max_queue_tokens=args.max_queue_tokens,
        cors_origins=tuple(args.cors_origin),
    )

    def load() -> Any:
        embedder = load_embedder_from_args(args, layers)
        embedder.encode(["warm-up"], batch_size=1)
        print(
            f"vaembed serve: {settings.served_model_name} loaded ({embedder.recipe.name}, layers {embedder.layers}, "
            f"dimension {embedder.dimension})",
            file=sys.stderr,
            flush=True,
        )
        return embedder

    failures: list[BaseException] = []

    def stop_on_failure(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(load, settings, on_load_failure=stop_on_failure)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level))
    _access_log(args.log_level)
    print(
        f"vaembed serve: listening on http://{args.host}:{args.port}/v1; loading {settings.served_model_name} "
        "(GET /health says 'loading' until it is ready)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled once it has shut down
        pass
    if failures:
        error = failures[0]
        message = str(error) if isinstance(error, CommandError) else f"{type(error).__name__}: {error}"
        print(f"vaembed serve: the model failed to load: {message}", file=sys.stderr, flush=True)
        return 1
    return 0
