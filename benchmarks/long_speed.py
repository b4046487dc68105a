r"""Time per long document: the engine against a bare forward over the same token ids and batches.

    python -m benchmarks.long_speed --model smollm2-135m --lengths 512 1024 2048 4096 8192 \\
        --presets va aligned-wva kv hs-mean --out benchmarks/results/long-speed-cpu-smollm2-135m.json

For each long-text policy (`truncate`: the whole document in one pass, max
length 8192; `chunk`: windows of `--window` tokens, embedded in the engine's
token-budgeted batches), each preset and each document length (exactly that
many text tokens of the Python library reference, batch of one document):
`Embedder.encode([document])` is timed against a plain `AutoModel` (sdpa
attention, no vaembed hooks, loaded separately in the same process) run over
exactly the engine's token sequences and batches. The two alternate within
every repeat (the order flips each repeat), so load on the shared machine hits
both alike. The ratio is bare seconds over engine seconds (above 1: the engine
is faster, e.g. by exiting early); target >= 0.95x for every preset. The run
prints a markdown table of the ratios; `--render RUN.json [MORE.json ...]` prints
it again, merging several runs of one model into one table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.speed_runner import exact_token_text, long_source

Result = dict[str, Any]
TARGET = 0.95
POLICIES = ("truncate", "chunk")


def bare_model(folder: str) -> torch.nn.Module:
    """The plain model: transformers' own sdpa attention, fp32, eval mode."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    return model.eval()


def run_bare(model: torch.nn.Module, embedder: Any, text: str) -> None:
    """The bare forward over the engine's own sequences and batches of `text`."""
    from vaembed.engine.batching import plan_batches

    sequences, _ = embedder.tokenize([text])
    plan = plan_batches([len(s.ids) for s in sequences], 32, embedder.batch_token_budget)
    with torch.inference_mode():
        for chosen in plan:
            batch = embedder.text_tokenizer.collate([sequences[i] for i in chosen])
            model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                use_cache=False,
            )


def timed(call: Any) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def policy_embedder(model: str, preset: str, policy: str, args: argparse.Namespace) -> Any:
    """The engine for one preset under one long-text policy (`--max-length` or `--window` tokens per pass)."""
    from vaembed import Embedder

    max_length = args.max_length if policy == "truncate" else args.window
    return Embedder.from_pretrained(model, preset, long_text=policy, max_length=max_length)


def document_calls(embedder: Any, bare: torch.nn.Module, text: str) -> tuple[Any, Any]:
    """The two timed calls on one document: the engine's encode and the bare forward over its batches."""
    engine_call = lambda: embedder.encode([text], batch_size=32, show_progress_bar=False)  # noqa: E731
    bare_call = lambda: run_bare(bare, embedder, text)  # noqa: E731
    return engine_call, bare_call


def measure(embedder: Any, bare: torch.nn.Module, text: str, repeats: int) -> Result:
    """Median seconds of the engine and of the bare forward on one document, alternating (one warm-up each)."""
    engine_call, bare_call = document_calls(embedder, bare, text)
    engine_call(), bare_call()
    engine, plain = [], []
    for repeat in range(repeats):
        order = [(engine, engine_call), (plain, bare_call)]
        for seconds, call in order if repeat % 2 == 0 else order[::-1]:
            seconds.append(timed(call))
    sequences, _ = embedder.tokenize([text])
    return {
        "engine_s": engine,
        "bare_s": plain,
        "engine_median_s": statistics.median(engine),
        "bare_median_s": statistics.median(plain),
        "vs_bare": statistics.median(plain) / statistics.median(engine),
        "sequences": len(sequences),
        "tokens": sum(len(s.ids) for s in sequences),
    }


def run(args: argparse.Namespace) -> Result:
    """Every policy x preset x length; returns the record."""
    import warnings

    from vaembed.models.loading import resolve_model_folder

    folder = resolve_model_folder(args.model).location
    bare = bare_model(folder)
    source = long_source(args.corpus)
    out: Result = {}
    for policy in args.policies:
        out[policy] = {}
        for preset in args.presets:
            embedder = policy_embedder(args.model, preset, policy, args)
            texts = {length: exact_token_text(embedder.tokenizer, source, length)[0] for length in args.lengths}
            rows = {}
            for length, text in texts.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a document at the length limit truncates its last tokens
                    rows[str(length)] = measure(embedder, bare, text, args.repeats)
                row = rows[str(length)]
                print(
                    f"[{args.model}] {policy} {preset} {length}: engine {row['engine_median_s']:.2f} s, "
                    f"bare {row['bare_median_s']:.2f} s, {row['vs_bare']:.2f}x",
                    flush=True,
                )
            out[policy][preset] = {"layers": embedder.layers, "stop_after": embedder.plan.stop_after, "rows": rows}
    return out


def span(layers: list[int]) -> str:
    """Layers as `"15-29"` when contiguous, else comma-separated."""
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ", ".join(str(layer) for layer in layers)


def render_markdown(record: Result) -> str:
    """The record as a markdown table: one row per policy and preset, one column per length.

    A cell is the ratio bare / engine (above 1 the engine is faster) and the engine's seconds per document.
    """
    lengths = [str(length) for length in record["settings"]["lengths"]]
    lines = [
        "| policy | preset | layers | " + " | ".join(f"{length} tokens" for length in lengths) + " |",
        "|---|---|---|" + "---|" * len(lengths),
    ]
    for policy, presets in record["policies"].items():
        for preset, cell in presets.items():
            ratios = []
            for length in lengths:
                row = cell["rows"].get(length)
                if row is None:
                    ratios.append("-")
                else:
                    ratio = row["bare_median_s"] / row["engine_median_s"]
                    ratios.append(f"{ratio:.2f}x ({row['engine_median_s']:.1f} s)")
            lines.append(f"| {policy} | {preset} | {span(cell['layers'])} | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n"


def merge_records(records: list[Result]) -> Result:
    """Several runs of one model as one record: the union of their lengths, policies and presets.

    A cell measured by several runs keeps the later run's row (runs are merged in the order given).

    Raises:
        ValueError: if the runs are of different models or a preset ran with different layers.
    """
    models = {record.get("model") for record in records}
    if len(models) > 1:
        raise ValueError(f"--render merges runs of one model; got {sorted(map(str, models))}")
    lengths = sorted({int(length) for record in records for length in record["settings"]["lengths"]})
    policies: dict[str, dict[str, Any]] = {}
    for record in records:
        for policy, presets in record["policies"].items():
            for preset, cell in presets.items():
                merged = policies.setdefault(policy, {}).setdefault(preset, {"layers": cell["layers"], "rows": {}})
                if merged["layers"] != cell["layers"]:
                    raise ValueError(f"{policy} {preset} ran with layers {merged['layers']} and {cell['layers']}")
                merged["rows"].update(cell["rows"])
    return {"model": models.pop(), "settings": {"lengths": lengths}, "policies": policies}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--presets", nargs="+", default=["va", "aligned-wva", "kv", "hs-mean"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--max-length", type=int, default=8192, help="truncate: tokens per pass (prompt included)")
    parser.add_argument("--window", type=int, default=512, help="chunk: tokens per window (prompt included)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", choices=("docs", "synthetic"), default="docs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--render", type=Path, nargs="+", help="print the table of earlier runs' JSON (merged) and stop"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Result:
    """Run the benchmark and write its JSON."""
    args = parse_args(argv)
    if args.render is not None:
        runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.render]
        record = runs[0] if len(runs) == 1 else merge_records(runs)
        print(render_markdown(record))
        return record
    started = time.perf_counter()
    record: Result = {
        "benchmark": "long_speed",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks.long_speed", *(sys.argv[1:] if argv is None else argv)],
        "model": args.model,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_start": list(os.getloadavg()),
        },
        "settings": {k: getattr(args, k) for k in ("lengths", "max_length", "window", "repeats", "corpus")},
        "target": TARGET,
        "policies": run(args),
    }
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    record["machine"]["load_average_end"] = list(os.getloadavg())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(render_markdown(record))
    return record


if __name__ == "__main__":
    main()
