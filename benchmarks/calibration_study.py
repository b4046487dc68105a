r"""Which intrinsic-dimension probe lands `layers="auto"` on the layers where readouts work?

    python -m benchmarks.calibration_study --models smollm2-135m gemma3-270m qwen2.5-coder-0.5b --sizes small \\
        --out benchmarks/results/calibration-study.json

Per model: the probe passes of `benchmarks.calibration_probes` (the bundled
corpus at each prompt and text length, every representation at every layer),
then every variant (representation x prompt x tokens x texts x rule) is applied
to each calibrated preset. Each variant's window is scored with the quality
benchmark's readings (`benchmarks.quality`, from its cache: run it first with
the same `--sizes`): the mean over the five tasks of `va`, `wva` and
`aligned-wva` at that window, against the fallback window `[L/2, L)` and the
best window of the supervised sweep (every window of the rule's width). `kv`
needs a pass per rerouted window: it is scored on FAQ retrieval and Lee STS at
the windows the variants choose, the fallback, and (`--kv-sweep`) every window.
Stability: the window's frequency over subsamples of 80% of the texts, and the
distance between the windows of two disjoint halves.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import quality
from benchmarks.calibration_probes import PROBE_PROMPTS, PROBE_TOKENS, READ, STUDY_PRESETS, Variant, probe_states
from benchmarks.readouts import Capture, PassGroup
from benchmarks.task_suite import SIZES, build_tasks
from vaembed import Embedder
from vaembed.calibration.selection import RULES
from vaembed.calibration.stability import CurveSamples, sample_curves, stable_choice
from vaembed.recipes.layers import resolve_layers, window_width
from vaembed.recipes.presets import get_recipe

REPRESENTATIONS = ("residual-last", "residual-mean", "readout")
PROMPT_MODES = (*PROBE_PROMPTS, "preset")
TEXT_COUNTS = (150, 330)
PRESET_PROMPTS = {"va": "none", "wva": "none", "aligned-wva": "prompteol", "kv": "compress"}
READINGS = {"va": ("plain", "value_mean"), "wva": ("plain", "value_weighted"),
            "aligned-wva": ("prompteol", "attention_last")}  # fmt: skip
KV_TASKS = ("faq-retrieval", "lee-sts")


def choose(samples: CurveSamples, rule: str) -> dict[str, Any]:
    """A rule on one set of curves, exactly as `layers="auto"` calibration chooses (`stable_choice`)."""
    found = stable_choice(samples, rule)
    first, second = found.halves
    return {"layers": list(found.layers), "frequency": found.frequency, "halves": [list(first), list(second)],
            "halves_gap": max(abs(a - b) for a, b in zip(sorted(first), sorted(second), strict=False))}  # fmt: skip


def variants(tokens: list[int]) -> list[Variant]:
    """Every variant of the study."""
    return [Variant(*combo) for combo in itertools.product(REPRESENTATIONS, PROMPT_MODES, tokens, TEXT_COUNTS, RULES)]


def window_scores(tasks: list[Any], readings: dict[str, Any], preset: str, windows: list[tuple[int, ...]]) -> dict:
    """The mean over tasks of a readout preset at each window (raw vectors, as the quality tables' first column)."""
    group, capture = READINGS[preset]
    out = {}
    for window in windows:
        embed = readings[group].embed(capture, list(window))
        out[window] = float(np.mean([task.score(embed) for task in tasks]))
    return out


def kv_scores(embedder: Embedder, tasks: list[Any], windows: set[tuple[int, ...]], args: argparse.Namespace) -> dict:
    """The mean over `KV_TASKS` of `kv` rerouting each window (one pass group per window, cached)."""
    chosen = [task for task in tasks if task.name in KV_TASKS]
    texts = quality.texts_by_role(chosen, corpus=False)
    out = {}
    for window in sorted(windows):
        recipe = get_recipe("kv").with_layers(list(window))
        group = PassGroup(
            f"kv-{'-'.join(map(str, window))}", recipe, (Capture("hidden_hybrid", "hidden_hybrid", "final"),)
        )
        reading = quality.cached_read(embedder, group, texts, args)
        embed = reading.embed("hidden_hybrid", [-1])
        out[window] = float(np.mean([task.score(embed) for task in chosen]))
    return out


def study_model(model: str, tasks: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Probe passes, every variant's windows, and their scores for one model."""
    started = time.perf_counter()
    embedder = Embedder.from_pretrained(model, "hs-mean", max_length=args.max_length, long_text="truncate")
    count, width = embedder.num_layers, window_width(embedder.num_layers)
    layers = quality.model_layers(embedder)
    readings = {g.name: quality.cached_read(embedder, g, quality.texts_by_role(tasks), args)
                for g in quality.groups_for(layers) if g.name in ("plain", "prompteol")}  # fmt: skip
    states = {(p, t): probe_states(embedder, p, t) for p in PROBE_PROMPTS for t in args.tokens}
    bundles = {(p, t, n, name): sample_curves([layer[:n] for layer in states[(p, t)][name]], resamples=args.resamples)
               for (p, t) in states for n in TEXT_COUNTS for name in READ}  # fmt: skip
    all_windows = [tuple(range(s, s + width)) for s in range(count - width + 1)]
    fallback = tuple(resolve_layers("fallback", count))
    record: dict[str, Any] = {"num_layers": count, "width": width, "fallback": list(fallback), "variants": {}}
    record["sweep"] = {p: {"-".join(map(str, w)): s for w, s in window_scores(tasks, readings, p, all_windows).items()}
                       for p in READINGS}  # fmt: skip
    record["fallback_score"] = {p: window_scores(tasks, readings, p, [fallback])[fallback] for p in READINGS}
    record["curves"] = {f"{name}/{p}/{t}": bundles[(p, t, TEXT_COUNTS[-1], name)].full.tolist()
                        for (p, t) in states for name in READ}  # fmt: skip
    kv_windows = {tuple(resolve_layers("kv-fallback", count))}
    for variant in variants(args.tokens):
        entry = {}
        for preset in STUDY_PRESETS:
            prompt = PRESET_PROMPTS[preset] if variant.prompt == "preset" else variant.prompt
            name = f"readout:{preset}" if variant.representation == "readout" else variant.representation
            entry[preset] = choose(bundles[(prompt, variant.tokens, variant.texts, name)], variant.rule)
        kv_windows.add(tuple(entry["kv"]["layers"]))
        record["variants"][variant.label] = entry
    record["other_windows"] = {p: {} for p in READINGS}  # non-contiguous (lowest-ID) choices, outside the sweep
    for variant in record["variants"].values():
        for preset in READINGS:
            window = "-".join(map(str, variant[preset]["layers"]))
            scored = {**record["sweep"][preset], **record["other_windows"][preset]}
            if window not in scored:
                key = tuple(variant[preset]["layers"])
                scored[window] = record["other_windows"][preset][window] = window_scores(
                    tasks, readings, preset, [key]
                )[key]
            variant[preset]["score"] = scored[window]
    if args.kv_sweep:
        kv_windows |= set(all_windows)
    kv = kv_scores(embedder, tasks, kv_windows, args)
    record["kv_scores"] = {"-".join(map(str, w)): s for w, s in kv.items()}
    record["kv_fallback"] = list(resolve_layers("kv-fallback", count))
    for variant in record["variants"].values():
        variant["kv"]["score"] = kv[tuple(variant["kv"]["layers"])]
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study on each model and write one JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"])
    parser.add_argument("--sizes", choices=tuple(SIZES), default="small")
    parser.add_argument("--tokens", type=int, nargs="+", default=list(PROBE_TOKENS))
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--kv-sweep", action="store_true", help="score kv at every rerouted window too")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tasks = build_tasks(SIZES[args.sizes])
    record = json.loads(args.out.read_text()) if args.out.is_file() else {"models": {}}
    record.update({"sizes": args.sizes, "tokens": args.tokens, "resamples": args.resamples, "kv_tasks": list(KV_TASKS)})
    for model in args.models:
        record["models"][model] = study_model(model, tasks, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"[{model}] study done in {record['models'][model]['seconds']} s", flush=True)
    return record


if __name__ == "__main__":
    main()
