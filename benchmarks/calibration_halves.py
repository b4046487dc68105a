r"""Do two disjoint halves of the bundled corpus calibrate to the same window, and is it the useful one?

    python -m benchmarks.calibration_halves --models smollm2-135m gemma3-270m qwen2.5-coder-0.5b --sizes small \\
        --out benchmarks/results/calibration-halves.json

Per model: one pass of the default calibration probe over the bundled corpus,
then for each selection rule the window `layers="auto"` takes (the vote over 20
subsamples of 80% of the 330 texts), the windows the same vote takes on the
even- and odd-positioned halves (what calibrating on either half alone
chooses), and, for comparison, the rule applied to one curve per half (how the
halves were reported before the vote was used for them too). Every window is
scored as `benchmarks.calibration_defaults` scores one: `va` and `aligned-wva`
from the quality benchmark's cached passes, raw and with each preset's shipped
post-processing, as the mean over the five tasks; beside them the fallback
window and the best window of the sweep (every contiguous window of the rule's
width, raw).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import quality
from benchmarks.calibration_defaults import READINGS, layer_span, window_means
from benchmarks.task_suite import SIZES, build_tasks
from vaembed import Embedder
from vaembed.calibration.corpus import bundled_corpus
from vaembed.calibration.probe import collect_layer_states, get_probe, preset_readout
from vaembed.calibration.run import calibrate_states
from vaembed.calibration.selection import RULES, select_window
from vaembed.calibration.twonn import id_curve
from vaembed.recipes.layers import resolve_layers, window_width
from vaembed.recipes.presets import PRESET_RECIPES
from vaembed.recipes.prompts import PROMPTS

__all__ = ["halves_gap", "render_markdown"]


def halves_gap(first: list[int], second: list[int]) -> int:
    """The largest distance, position by position, between two sorted windows."""
    return max(abs(a - b) for a, b in zip(sorted(first), sorted(second), strict=True))


def probe_states(embedder: Embedder) -> list[np.ndarray]:
    """The default probe's per-text vectors at every layer over the bundled corpus (one pass)."""
    probe = get_probe("default")
    wanted = {"probe": preset_readout("va", probe.representation)}
    prompt = PROMPTS[probe.prompt_name("va")]
    texts = list(bundled_corpus().texts)
    return collect_layer_states(embedder.runner, texts, prompt, wanted, max_tokens=probe.max_tokens)["probe"]


def study_model(model: str, tasks: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every rule's window, its halves (voted and one curve each) and their scores, for one model."""
    embedder = Embedder.from_pretrained(model, "hs-mean", max_length=args.max_length, long_text="truncate")
    count, width = embedder.num_layers, window_width(embedder.num_layers)
    groups = {g.name: g for g in quality.groups_for(quality.model_layers(embedder))}
    texts = quality.texts_by_role(tasks)
    readings = {preset: quality.cached_read(embedder, groups[group], texts, args)
                for preset, (group, _) in READINGS.items()}  # fmt: skip
    cache: dict[tuple[str, tuple[int, ...]], dict[str, float]] = {}

    def scored(preset: str, window: list[int]) -> dict[str, Any]:
        key = (preset, tuple(window))
        if key not in cache:
            cache[key] = window_means(tasks, readings[preset], READINGS[preset][1], list(window))
        return {"layers": list(window), **cache[key]}

    started = time.perf_counter()
    states = probe_states(embedder)
    seconds = round(time.perf_counter() - started, 1)
    record: dict[str, Any] = {"num_layers": count, "width": width, "probe_pass_seconds": seconds, "rules": {}}
    fallback = list(resolve_layers("fallback", count))
    sweep = [list(range(s, s + width)) for s in range(count - width + 1)]
    record["presets"] = {
        preset: {
            "postprocess": PRESET_RECIPES[preset].postprocess or "raw",
            "fallback": scored(preset, fallback),
            "sweep_best": max((scored(preset, w) for w in sweep), key=lambda row: row["raw"]),
        }
        for preset in READINGS
    }
    for rule in RULES:
        started = time.perf_counter()
        found = calibrate_states(states, rule, resamples=args.resamples)
        seconds = time.perf_counter() - started
        single = [list(select_window(id_curve([layer[part::2] for layer in states], degenerate=0.0), rule))
                  for part in (0, 1)]  # fmt: skip
        halves = [list(half) for half in found.halves]
        record["rules"][rule] = {
            "layers": list(found.layers),
            "frequency": found.frequency,
            "halves": halves,
            "halves_gap": found.halves_gap,
            "single_curve_halves": single,
            "single_curve_halves_gap": halves_gap(*single),
            "seconds": round(seconds, 1),
            "scores": {p: [scored(p, list(found.layers)), *(scored(p, h) for h in halves)] for p in READINGS},
        }
        print(f"[{model}] {rule}: {found.layers} halves {halves} (one curve each: {single})", flush=True)
    return record


def _both(halves: list[list[int]]) -> str:
    return " and ".join(layer_span(half) for half in halves)


def render_markdown(record: dict[str, Any]) -> str:
    """One row per model and rule: the window, both halves, their gaps and the scores each window earns."""
    lines = [
        "| model | rule | `auto` window | halves (voted) | gap | halves (one curve each) | gap | "
        "`va` auto / halves | `aligned-wva` auto / halves |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, entry in record["models"].items():
        for rule, row in entry["rules"].items():
            cells = []
            for preset in READINGS:
                mode = entry["presets"][preset]["postprocess"]
                cells.append(" / ".join(f"{s[mode]:.3f}" for s in row["scores"][preset]))
            lines.append(
                f"| {model} | {rule} | {layer_span(row['layers'])} | {_both(row['halves'])} | "
                f"{row['halves_gap']} | {_both(row['single_curve_halves'])} | "
                f"{row['single_curve_halves_gap']} | {cells[0]} | {cells[1]} |"
            )
    lines += ["", "| model | preset | post-processing | fallback | sweep best (raw) |", "|---|---|---|---|---|"]
    for model, entry in record["models"].items():
        for preset, row in entry["presets"].items():
            mode, fb, best = row["postprocess"], row["fallback"], row["sweep_best"]
            lines.append(
                f"| {model} | {preset} | {mode} | {layer_span(fb['layers'])}: {fb[mode]:.3f} | "
                f"{layer_span(best['layers'])}: {best['raw']:.3f} raw, {best[mode]:.3f} {mode} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run each model and write one JSON file (models merge into an existing one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"])
    parser.add_argument("--sizes", choices=tuple(SIZES), default="small")
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="print the tables of --out and stop")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    record = json.loads(args.out.read_text()) if args.out.is_file() else {"models": {}}
    if args.markdown:
        print(render_markdown(record))
        return record
    tasks = build_tasks(SIZES[args.sizes])
    record.update({"sizes": args.sizes, "resamples": args.resamples, "probe": get_probe("default").describe()})
    for model in args.models:
        record["models"][model] = study_model(model, tasks, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(render_markdown(record))
    return record


if __name__ == "__main__":
    main()
