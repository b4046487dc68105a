r"""Where a long document's time goes: the engine's operators against the bare forward's, op by op.

    python -m benchmarks.long_profile --model qwen2.5-coder-0.5b --preset kv --policy chunk --length 4096 \\
        --rounds 2 --out benchmarks/results/long-profile-cpu-qwen2.5-coder-0.5b-kv-chunk-4096.json

When `benchmarks.long_speed` shows a cell below its target, this tells engine
work from machine noise. One document of exactly `--length` text tokens is
embedded with `Embedder.encode` and run through the bare `AutoModel` forward
over the same sequences and batches (`benchmarks.long_speed.run_bare`), each
under `torch.profiler`, alternating for `--rounds` rounds (bare first). For
every operator the record keeps its call count and self CPU seconds on each
side: when the engine's operator counts equal the bare forward's and its
extra time sits in the same operators, the gap is not work the engine adds.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.long_speed import POLICIES, bare_model, document_calls, policy_embedder
from benchmarks.speed import write_json
from benchmarks.speed_runner import exact_token_text, long_source

Result = dict[str, Any]
TOP = 12
"""Operators kept per round: the most self CPU time on either side."""


def profiled(call: Any) -> tuple[float, dict[str, dict[str, float]]]:
    """Wall seconds of one call and, per operator, its call count and self CPU seconds."""
    with profile(activities=[ProfilerActivity.CPU]) as recorder:
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
    ops = {
        event.key: {"calls": int(event.count), "self_s": event.self_cpu_time_total / 1e6}
        for event in recorder.key_averages()
    }
    return seconds, ops


def top_ops(bare: dict[str, dict[str, float]], engine: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The `TOP` operators by self time on either side, each with both sides' counts and seconds."""
    names = sorted(set(bare) | set(engine), key=lambda n: -max(bare.get(n, {}).get("self_s", 0.0),
                                                                engine.get(n, {}).get("self_s", 0.0)))  # fmt: skip
    empty = {"calls": 0, "self_s": 0.0}
    return {name: {"bare": bare.get(name, empty), "engine": engine.get(name, empty)} for name in names[:TOP]}


def run(args: argparse.Namespace) -> list[Result]:
    """The alternating rounds: wall seconds and the top operators of each side."""
    from vaembed.models.loading import resolve_model_folder

    bare = bare_model(resolve_model_folder(args.model).location)
    embedder = policy_embedder(args.model, args.preset, args.policy, args)
    text = exact_token_text(embedder.tokenizer, long_source(args.corpus), args.length)[0]
    engine_call, bare_call = document_calls(embedder, bare, text)
    rounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a document at the length limit truncates its last tokens
        engine_call(), bare_call()  # warm-up
        for _ in range(args.rounds):
            bare_s, bare_ops = profiled(bare_call)
            engine_s, engine_ops = profiled(engine_call)
            rounds.append({"bare_s": bare_s, "engine_s": engine_s, "vs_bare": bare_s / engine_s,
                           "ops": top_ops(bare_ops, engine_ops)})  # fmt: skip
            print(f"[{args.model}] {args.policy} {args.preset} {args.length}: engine {engine_s:.2f} s, "
                  f"bare {bare_s:.2f} s, {bare_s / engine_s:.2f}x")  # fmt: skip
    return rounds


def render_markdown(record: Result) -> str:
    """Each round's top operators: calls and self seconds, bare against engine."""
    lines = []
    for index, entry in enumerate(record["rounds"], 1):
        lines += [
            f"round {index}: bare {entry['bare_s']:.2f} s, engine {entry['engine_s']:.2f} s ({entry['vs_bare']:.2f}x)",
            "",
            "| operator | bare calls | engine calls | bare self s | engine self s |",
            "|---|---|---|---|---|",
        ]
        for name, sides in entry["ops"].items():
            bare, engine = sides["bare"], sides["engine"]
            counts = f"{bare['calls']} | {engine['calls']}"
            lines.append(f"| {name} | {counts} | {bare['self_s']:.2f} | {engine['self_s']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--preset", default="va")
    parser.add_argument("--policy", choices=POLICIES, default="chunk")
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=8192, help="truncate: tokens per pass (prompt included)")
    parser.add_argument("--window", type=int, default=512, help="chunk: tokens per window (prompt included)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--corpus", choices=("docs", "synthetic"), default="docs")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Result:
    """Profile, write the JSON, print the tables."""
    args = parse_args(argv)
    record: Result = {
        "benchmark": "long_profile",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks.long_profile", *(sys.argv[1:] if argv is None else argv)],
        "model": args.model,
        "settings": {k: getattr(args, k) for k in ("preset", "policy", "length", "max_length", "window", "corpus")},
        "torch_threads": torch.get_num_threads(),
        "rounds": run(args),
    }
    if args.out is not None:
        write_json(args.out, record)
    print(render_markdown(record))
    return record


if __name__ == "__main__":
    main()
