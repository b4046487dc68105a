"""Quality of every preset on real labelled data, with layer sweeps and the KV bias sweep.

    python -m benchmarks.quality --models smollm2-135m gemma3-270m qwen2.5-coder-0.5b --sizes standard
    python -m benchmarks.quality --baselines --sizes standard

Per model, one JSON file in `--out` (default `benchmarks/results/`) holds the
score of each preset with its calibrated (`auto`) and fallback layers on every
task, the same with per-dimension standardisation fitted on the task's
documents, single-layer sweeps of VA, hidden-state mean and AlignedWVA, the KV
bias sweep, the layers used and the time each group of passes took. Presets
sharing a forward pass are read from one pass (`benchmarks.readouts`), and every
composed preset is checked against `Embedder.encode` on a sample of texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

import vaembed
from benchmarks.readouts import Capture, PassGroup, Readings, check_against_engine, read_group
from benchmarks.task_suite import SIZES, build_tasks
from vaembed import Embedder
from vaembed.cache import cache_dir
from vaembed.recipes import CALIBRATED_PRESETS, READOUTS, Recipe, get_recipe, resolve_layers
from vaembed.recipes.prompts import PROMPTS

Embed = Callable[[list[str], str], np.ndarray]
SWEEP_TASKS = ("faq-retrieval", "lee-sts")
BIAS_TASKS = ("faq-retrieval", "lee-sts")
RESULTS = Path(__file__).parent / "results"


def groups_for(layers: dict[str, dict[str, list[int]]]) -> list[PassGroup]:
    """The passes that cover every preset: plain text, PromptEOL, Echo, Token Prepending, KV (auto and fallback)."""
    plain = Recipe(PROMPTS["none"], READOUTS["hidden_mean"], "final", name="plain")
    prompteol = Recipe(PROMPTS["prompteol"], READOUTS["hidden_last"], "final", name="prompteol")
    kv = get_recipe("kv")
    return [
        PassGroup(
            "plain",
            plain,
            (
                Capture("hidden_mean", "hidden_mean"),
                Capture("hidden_last", "hidden_last", "final"),
                Capture("value_mean", "value_mean"),
                Capture("value_weighted", "value_weighted"),
            ),
        ),
        PassGroup(
            "prompteol",
            prompteol,
            (
                Capture("hidden_last", "hidden_last", "final"),
                Capture("attention_last", "attention_last"),
                Capture("value_weighted", "value_weighted"),
            ),
        ),
        PassGroup("echo", get_recipe("echo"), (Capture("hidden_mean", "hidden_mean", "final"),)),
        PassGroup(
            "token-prepending", get_recipe("token-prepending"), (Capture("hidden_last", "hidden_last", "final"),)
        ),
        PassGroup(
            "kv-auto", kv.with_layers(layers["kv"]["auto"]), (Capture("hidden_hybrid", "hidden_hybrid", "final"),)
        ),
        PassGroup(
            "kv-fallback",
            kv.with_layers(layers["kv"]["fallback"]),
            (Capture("hidden_hybrid", "hidden_hybrid", "final"),),
        ),
    ]


def configs_for(layers: dict[str, dict[str, list[int]]], num_layers: int) -> list[dict[str, Any]]:
    """Each scored configuration: which group and capture, which layers, and the preset it stands for."""
    final = [num_layers - 1]
    out = [
        {"name": "hs-mean", "group": "plain", "capture": "hidden_mean", "layers": final, "preset": "hs-mean"},
        {"name": "hs-last", "group": "plain", "capture": "hidden_last", "layers": [-1], "preset": "hs-last"},
        {"name": "prompteol", "group": "prompteol", "capture": "hidden_last", "layers": [-1], "preset": "prompteol"},
        {"name": "echo", "group": "echo", "capture": "hidden_mean", "layers": [-1], "preset": "echo"},
        {
            "name": "token-prepending",
            "group": "token-prepending",
            "capture": "hidden_last",
            "layers": [-1],
            "preset": "token-prepending",
        },
    ]
    readouts = {"va": ("plain", "value_mean"), "wva": ("plain", "value_weighted")}
    readouts["aligned-wva"] = ("prompteol", "attention_last")
    for preset, (group, capture) in readouts.items():
        for choice in ("auto", "fallback"):
            chosen = layers[preset][choice]
            out.append(
                {"name": f"{preset}@{choice}", "group": group, "capture": capture, "layers": chosen, "preset": preset}
            )
            if preset == "aligned-wva":  # the same readout without W_O: isolates the alignment
                out.append(
                    {"name": f"prompteol-wva@{choice}", "group": group, "capture": "value_weighted", "layers": chosen}
                )
    for choice in ("auto", "fallback"):
        out.append(
            {
                "name": f"kv@{choice}",
                "group": f"kv-{choice}",
                "capture": "hidden_hybrid",
                "layers": [-1],
                "preset": "kv",
            }
        )
    return out


def standardized(embed: Embed, documents: list[str]) -> Embed:
    """Per-dimension standardisation fitted on the documents' vectors, then L2 normalisation."""
    fitted = embed(documents, "document").astype(np.float64)
    mean, scale = fitted.mean(axis=0), fitted.std(axis=0) + 1e-6

    def embed_standardized(texts: list[str], role: str) -> np.ndarray:
        shifted = (embed(texts, role) - mean) / scale
        return (shifted / np.maximum(np.linalg.norm(shifted, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return embed_standardized


def texts_by_role(tasks: list[Any]) -> dict[str, list[str]]:
    """Distinct texts per role over the tasks, in first-seen order."""
    out: dict[str, dict[str, None]] = {"query": {}, "document": {}}
    for task in tasks:
        for role, texts in task.texts():
            out[role].update(dict.fromkeys(texts))
    return {role: list(texts) for role, texts in out.items() if texts}


def documents_of(task: Any) -> list[str]:
    """The texts a task embeds as documents (what standardisation is fitted on)."""
    return [text for role, texts in task.texts() if role == "document" for text in texts]


def score_all(tasks: list[Any], embed: Embed) -> tuple[dict[str, float], dict[str, float]]:
    """Scores of an embed function on each task, plain and standardised."""
    plain = {task.name: round(float(task.score(embed)), 4) for task in tasks}
    std = {task.name: round(float(task.score(standardized(embed, documents_of(task)))), 4) for task in tasks}
    return plain, std


def cached_read(
    embedder: Embedder, group: PassGroup, texts: dict[str, list[str]], args: argparse.Namespace
) -> Readings:
    """`read_group`, kept in `$VAEMBED_CACHE/quality-readings/` so an interrupted run resumes where it stopped.

    The key covers the model, the group (prompt, intervention, captures), the texts,
    `max_length` and the vaembed version; `--no-cache` reads afresh.
    """
    key = json.dumps(
        [embedder.name, repr(group), texts, args.max_length, vaembed.__version__, torch.__version__], sort_keys=True
    )
    path = cache_dir() / "quality-readings" / f"{group.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pkl"
    if not args.no_cache and path.is_file():
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - written by this function on this machine
    readings = read_group(embedder, group, texts, batch_size=args.batch_size)
    if not args.no_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        with staging.open("wb") as handle:
            pickle.dump(readings, handle, protocol=pickle.HIGHEST_PROTOCOL)
        staging.replace(path)
    return readings


def model_layers(embedder: Embedder) -> dict[str, dict[str, list[int]]]:
    """The calibrated and fallback layers of each calibrated preset."""
    count = embedder.num_layers
    out = {}
    for preset in CALIBRATED_PRESETS:
        fallback = "kv-fallback" if preset == "kv" else "fallback"
        out[preset] = {
            "auto": embedder.with_recipe(preset, "auto").layers,
            "fallback": list(resolve_layers(fallback, count)),
        }
    return out


def run_model(model: str, tasks: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every preset, sweep and bias setting of one model; returns the result record."""
    start = time.perf_counter()
    embedder = Embedder.from_pretrained(model, recipe="hs-mean", max_length=args.max_length, long_text="truncate")
    load_seconds = time.perf_counter() - start
    layers = model_layers(embedder)
    texts = texts_by_role(tasks)
    record: dict[str, Any] = {"model": model, "num_layers": embedder.num_layers, "layers": layers}
    record["load_seconds"] = round(load_seconds, 1)
    readings: dict[str, Readings] = {}
    for group in groups_for(layers):
        readings[group.name] = cached_read(embedder, group, texts, args)
        print(f"[{model}] {group.name}: {readings[group.name].tokens} tokens in {readings[group.name].seconds:.0f} s")
    record["passes"] = {name: {"seconds": round(r.seconds, 1), "tokens": r.tokens} for name, r in readings.items()}
    record["scores"], record["scores_standardized"], record["engine_check"] = {}, {}, {}
    for config in configs_for(layers, embedder.num_layers):
        reading = readings[config["group"]]
        if "preset" in config:
            preset_layers = config["layers"] if config["preset"] in CALIBRATED_PRESETS else None
            if config["preset"] == "kv":
                preset_layers = layers["kv"][config["name"].split("@")[1]]
            record["engine_check"][config["name"]] = check_against_engine(
                embedder, reading, config["capture"], config["layers"], config["preset"], preset_layers
            )
        embed = reading.embed(config["capture"], config["layers"])
        record["scores"][config["name"]], record["scores_standardized"][config["name"]] = score_all(tasks, embed)
        print(f"[{model}] {config['name']}: {record['scores'][config['name']]}")
    record["sweep"] = sweep(tasks, readings, embedder.num_layers)
    record["bias_sweep"] = bias_sweep(embedder, tasks, layers, args) if args.bias else {}
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def sweep(tasks: list[Any], readings: dict[str, Readings], num_layers: int) -> dict[str, dict[str, list[float]]]:
    """Single-layer scores of VA, hidden-state mean and AlignedWVA (and WVA) on the sweep tasks."""
    chosen = [task for task in tasks if task.name in SWEEP_TASKS]
    captures = {
        "va": ("plain", "value_mean"),
        "hs-mean": ("plain", "hidden_mean"),
        "aligned-wva": ("prompteol", "attention_last"),
        "wva": ("plain", "value_weighted"),
    }
    out: dict[str, dict[str, list[float]]] = {}
    for name, (group, capture) in captures.items():
        out[name] = {
            task.name: [
                round(float(task.score(readings[group].embed(capture, [layer]))), 4) for layer in range(num_layers)
            ]
            for task in chosen
        }
    return out


def bias_sweep(
    embedder: Embedder, tasks: list[Any], layers: dict[str, dict[str, list[int]]], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """KV-Embedding (calibrated layers) at each prefix bias b on the bias-sweep tasks."""
    chosen = [task for task in tasks if task.name in BIAS_TASKS]
    texts = texts_by_role(chosen)
    kv = get_recipe("kv").with_layers(layers["kv"]["auto"])
    out = {}
    for bias in args.bias:
        recipe = replace(kv, intervention=replace(kv.intervention, bias=bias), name=f"kv-b{bias}")
        group = PassGroup(f"kv-b{bias}", recipe, (Capture("hidden_hybrid", "hidden_hybrid", "final"),))
        reading = cached_read(embedder, group, texts, args)
        embed = reading.embed("hidden_hybrid", [-1])
        out[str(bias)] = {task.name: round(float(task.score(embed)), 4) for task in chosen}
        print(f"[bias {bias}] {out[str(bias)]}")
    return out


def run_baselines(tasks: list[Any]) -> dict[str, Any]:
    """TF-IDF and all-MiniLM-L6-v2 on the same tasks."""
    from benchmarks.baseline_encoders import minilm_embed, tfidf_embed

    record: dict[str, Any] = {"model": "baselines", "scores": {}}
    record["scores"]["tf-idf"] = {task.name: round(float(task.score(tfidf_embed(task))), 4) for task in tasks}
    embed = minilm_embed()
    record["scores"]["all-MiniLM-L6-v2"] = {task.name: round(float(task.score(embed)), 4) for task in tasks}
    return record


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Machine and versions, for the record."""
    return {
        "command": "python -m benchmarks.quality " + " ".join(args.argv),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "vaembed": vaembed.__version__,
        "dtype": "float32",
        "device": "cpu",
        "max_length": args.max_length,
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--baselines", action="store_true", help="score TF-IDF and all-MiniLM-L6-v2")
    parser.add_argument("--sizes", choices=tuple(SIZES), default="standard")
    parser.add_argument("--bias", type=float, nargs="*", default=[], help="KV bias values to sweep")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-cache", action="store_true", help="do not reuse or keep passes in $VAEMBED_CACHE")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    tasks = build_tasks(SIZES[args.sizes])
    args.out.mkdir(parents=True, exist_ok=True)
    info = {task.name: {"metric": task.metric, "texts": sum(len(t) for _, t in task.texts())} for task in tasks}
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (m, lambda m=m: run_model(m, tasks, args)) for m in args.models
    ]
    if args.baselines:
        jobs.append(("baselines", lambda: run_baselines(tasks)))
    for name, job in jobs:
        record = job()
        record.update({"sizes": args.sizes, "tasks": info, "environment": environment(args)})
        path = args.out / f"quality-{Path(name).name}-{args.sizes}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
