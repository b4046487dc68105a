"""Quality of every preset on real labelled data, with layer sweeps and the KV bias sweep.

    python -m benchmarks.quality --models smollm2-135m gemma3-270m qwen2.5-coder-0.5b --sizes standard
    python -m benchmarks.quality --baselines --sizes standard

Per model, one JSON file in `--out` (default `benchmarks/results/`) holds the
score of each preset with its calibrated (`auto`) and fallback layers on every
task, the same with per-dimension standardisation fitted on the task's
documents, single-layer sweeps of VA, hidden-state mean and AlignedWVA, the KV
bias sweep, the layers used and the time each group of passes took.
`--groups plain prompteol` reads only the named pass groups (the presets they
carry, with the sweeps and experiments when both are read) and writes
`partial-quality-<model>-<sizes>.json`, which the report tables leave out; a
later partial run of other groups is merged into it (`benchmarks.partial_records`),
and once every group is in, the record becomes `quality-<model>-<sizes>.json`. Presets
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
from benchmarks.experiments import FUSED_WITH, combined_experiment, lexical_experiment
from benchmarks.hybrid import bm25_scores
from benchmarks.partial_records import merge_partial
from benchmarks.readouts import CORPUS, Capture, PassGroup, Readings, check_against_engine, read_group
from benchmarks.task_suite import SIZES, build_tasks
from benchmarks.variants import (
    VARIANTS,
    dense_embeds,
    generic_transform,
    hubness_scores,
    hybrid_scores,
    score_variants,
)
from vaembed import Embedder
from vaembed.cache import cache_dir
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.probe import get_probe
from vaembed.recipes import CALIBRATED_PRESETS, READOUTS, Recipe, get_recipe, resolve_layers
from vaembed.recipes.prompts import PROMPTS

Embed = Callable[[list[str], str], np.ndarray]
SCORE_KEYS = {
    "raw": "scores",
    "center": "scores_center",
    "standardize": "scores_standardize",
    "task-standardize": "scores_task_standardize",
}
"""Where each post-processing variant's scores go in a model's record."""
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
                Capture("value_mean", "value_mean"),
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


def texts_by_role(tasks: list[Any], corpus: bool = True) -> dict[str, list[str]]:
    """Distinct texts per role over the tasks, in first-seen order, and the bundled corpus (for statistics)."""
    out: dict[str, dict[str, None]] = {"query": {}, "document": {}}
    for task in tasks:
        for role, texts in task.texts():
            out[role].update(dict.fromkeys(texts))
    found = {role: list(texts) for role, texts in out.items() if texts}
    return {**found, CORPUS: list(bundled_corpus().texts)} if corpus else found


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


def check_postprocessing(embedder: Embedder, readings: dict[str, Readings], layers: Any) -> dict[str, float]:
    """The benchmark's post-processing equals the engine's (its own statistics) for `va` and `aligned-wva`."""
    out = {}
    for preset, group, capture in (("va", "plain", "value_mean"), ("aligned-wva", "prompteol", "attention_last")):
        chosen = layers[preset]["fallback"]
        for mode in ("center", "standardize"):
            out[f"{preset}@fallback/{mode}"] = check_against_engine(
                embedder, readings[group], capture, chosen, preset, chosen, postprocess=mode,
                transform=generic_transform(readings[group], capture, chosen, mode),
            )  # fmt: skip
    return out


def run_model(model: str, tasks: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every preset (each post-processing variant and hybrid), sweep and bias setting of one model."""
    start = time.perf_counter()
    embedder = Embedder.from_pretrained(model, recipe="hs-mean", max_length=args.max_length, long_text="truncate")
    load_seconds = time.perf_counter() - start
    layers = model_layers(embedder)
    texts = texts_by_role(tasks)
    record: dict[str, Any] = {"model": model, "num_layers": embedder.num_layers, "layers": layers}
    record["calibration_probe"] = get_probe("default").describe()
    record["load_seconds"] = round(load_seconds, 1)
    readings: dict[str, Readings] = {}
    for group in groups_for(layers):
        if args.groups and group.name not in args.groups:
            continue
        readings[group.name] = cached_read(embedder, group, texts, args)
        print(f"[{model}] {group.name}: {readings[group.name].tokens} tokens in {readings[group.name].seconds:.0f} s")
    record["passes"] = {name: {"seconds": round(r.seconds, 1), "tokens": r.tokens} for name, r in readings.items()}
    retrieval = [task for task in tasks if task.kind == "retrieval"]
    bm25 = {task.name: bm25_scores(task.queries, task.documents) for task in retrieval}
    record["engine_check"], record["hybrid"], record["hubness"] = {}, {}, {}
    for variant in VARIANTS:
        record[SCORE_KEYS[variant]] = {}
    dense: dict[str, dict[str, Any]] = {}
    for config in configs_for(layers, embedder.num_layers):
        if config["group"] not in readings:  # a pass group left out with --groups
            continue
        reading = readings[config["group"]]
        if "preset" in config:
            preset_layers = config["layers"] if config["preset"] in CALIBRATED_PRESETS else None
            if config["preset"] == "kv":
                preset_layers = layers["kv"][config["name"].split("@")[1]]
            record["engine_check"][config["name"]] = check_against_engine(
                embedder, reading, config["capture"], config["layers"], config["preset"], preset_layers
            )
        embeds = dense_embeds(reading, config["capture"], config["layers"])
        dense[config["name"]] = embeds
        for variant, scores in score_variants(tasks, embeds).items():
            record[SCORE_KEYS[variant]][config["name"]] = scores
        record["hybrid"][config["name"]] = hybrid_scores(retrieval, embeds, bm25)
        record["hubness"][config["name"]] = hubness_scores(retrieval, embeds)
        print(f"[{model}] {config['name']}: {record['scores'][config['name']]}")
    record["groups"] = list(readings)
    if {"plain", "prompteol"} <= set(readings):  # what the checks and experiments below read
        record["engine_check"].update(check_postprocessing(embedder, readings, layers))
        fused = {name: dense[name] for name in FUSED_WITH}
        try:
            record["lexical"] = lexical_experiment(embedder, readings["prompteol"], retrieval, bm25, fused)
        except FileNotFoundError as error:  # an untied LM head that is not on disk
            record["lexical"] = {"skipped": str(error)}
        record["combined"] = combined_experiment(tasks, readings, layers["va"]["fallback"], bm25)
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
    texts = texts_by_role(chosen, corpus=False)
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


def run_baselines(tasks: list[Any], embeddinggemma: bool = False) -> dict[str, Any]:
    """TF-IDF, all-MiniLM-L6-v2 (and EmbeddingGemma-300M) on the same tasks; BM25 on the retrieval tasks."""
    from benchmarks.baseline_encoders import embeddinggemma_embed, minilm_embed, tfidf_embed

    record: dict[str, Any] = {"model": "baselines", "scores": {}}
    record["scores"]["tf-idf"] = {task.name: round(float(task.score(tfidf_embed(task))), 4) for task in tasks}
    record["retrieval_only"] = {
        "bm25": {t.name: round(t.ndcg(bm25_scores(t.queries, t.documents)), 4) for t in tasks if t.kind == "retrieval"}
    }
    encoders = [("all-MiniLM-L6-v2", minilm_embed)] + (
        [("EmbeddingGemma-300M", embeddinggemma_embed)] if embeddinggemma else []
    )
    for name, build in encoders:
        embed = build()
        record["scores"][name] = {task.name: round(float(task.score(embed)), 4) for task in tasks}
        print(f"[baselines] {name}: {record['scores'][name]}")
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
    parser.add_argument("--baselines", action="store_true", help="score TF-IDF, BM25 and all-MiniLM-L6-v2")
    parser.add_argument("--embeddinggemma", action="store_true", help="with --baselines: also EmbeddingGemma-300M")
    parser.add_argument("--sizes", choices=tuple(SIZES), default="standard")
    parser.add_argument("--bias", type=float, nargs="*", default=[], help="KV bias values to sweep")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-cache", action="store_true", help="do not reuse or keep passes in $VAEMBED_CACHE")
    parser.add_argument(
        "--groups", nargs="*", default=[], help="read only these pass groups (a partial record, `partial-quality-*`)"
    )
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    tasks = build_tasks(SIZES[args.sizes])
    args.out.mkdir(parents=True, exist_ok=True)
    info = {task.name: {"metric": task.metric, "texts": sum(len(t) for _, t in task.texts())} for task in tasks}
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (m, lambda m=m: run_model(m, tasks, args)) for m in args.models
    ]
    if args.baselines:
        jobs.append(("baselines", lambda: run_baselines(tasks, args.embeddinggemma)))
    for name, job in jobs:
        record = job()
        record.update({"sizes": args.sizes, "tasks": info, "environment": environment(args)})
        partial = bool(args.groups) and name != "baselines"
        path = args.out / f"{'partial-quality' if partial else 'quality'}-{Path(name).name}-{args.sizes}.json"
        merged_from = None
        if partial and path.exists():  # a slow model read a few groups at a time
            try:
                record, merged_from = merge_partial(json.loads(path.read_text()), record), path
            except ValueError as error:  # keep this run's rows beside the other record
                print(error)
                path = path.with_name(f"{path.stem}-unmerged.json")
        if partial and set(record["groups"]) >= {group.name for group in groups_for(record["layers"])}:
            path = args.out / f"quality-{Path(name).name}-{args.sizes}.json"  # every group read: a full record
        path.write_text(json.dumps(record, indent=1) + "\n")
        if merged_from is not None and merged_from != path:
            merged_from.unlink()
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
