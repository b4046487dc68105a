r"""Does a calibration probe's window beat the fallback window once the presets' post-processing is applied?

    python -m benchmarks.calibration_defaults benchmarks/results/calibration-study.json \\
        --variant residual-mean/compress/96t/330/interior-min --out benchmarks/results/calibration-defaults.json

The study (`benchmarks.calibration_study`) scores windows on raw vectors; the
presets ship with post-processing (`standardize` for `va`, `center` for
`aligned-wva`). For each model of the study, this reads the quality
benchmark's cached passes (`benchmarks.quality.cached_read`, the study's
sizes; nothing is recomputed when they are cached) and scores `va` and
`aligned-wva` at the fallback window and at the window `--variant` chose,
raw, centred and standardised (corpus statistics), as the mean over the five
tasks. A recipe's default may move to `layers="auto"` only if `auto` wins on
every model with the post-processing that recipe ships.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import quality
from benchmarks.task_suite import SIZES, build_tasks
from benchmarks.variants import dense_embeds
from vaembed import Embedder
from vaembed.recipes.presets import PRESET_RECIPES

__all__ = ["READINGS", "layer_span", "render_markdown", "window_means"]

READINGS = {"va": ("plain", "value_mean"), "aligned-wva": ("prompteol", "attention_last")}
"""Each preset's pass group and capture in the quality benchmark."""
MODES = ("raw", "center", "standardize")


def window_means(tasks: list[Any], reading: Any, capture: str, layers: list[int]) -> dict[str, float]:
    """The mean over `tasks` of each post-processing mode's embedding at `layers`."""
    embeds = dense_embeds(reading, capture, layers)
    return {mode: float(np.mean([task.score(embeds[mode]) for task in tasks])) for mode in MODES}


def model_rows(model: str, study: dict[str, Any], variant: str, tasks: list[Any], args: argparse.Namespace) -> dict:
    """Per preset: the fallback's and the variant's window and their scores in each mode."""
    embedder = Embedder.from_pretrained(model, "hs-mean", max_length=args.max_length, long_text="truncate")
    layers = quality.model_layers(embedder)
    groups = {g.name: g for g in quality.groups_for(layers)}
    texts = quality.texts_by_role(tasks)
    out = {}
    for preset, (group, capture) in READINGS.items():
        reading = quality.cached_read(embedder, groups[group], texts, args)
        windows = {"fallback": study["fallback"], "auto": study["variants"][variant][preset]["layers"]}
        out[preset] = {
            "postprocess": PRESET_RECIPES[preset].postprocess,
            **{role: {"layers": w, **window_means(tasks, reading, capture, list(w))} for role, w in windows.items()},
        }
    return out


def render_markdown(record: dict[str, Any]) -> str:
    """One row per model and preset: each window's score raw and with the preset's post-processing."""
    lines = [
        f"Probe `{record['variant']}` against the fallback window (mean over the five tasks, sizes {record['sizes']}):",
        "",
        "| model | preset | shipped post-processing | fallback | auto | fallback, post-processed | "
        "auto, post-processed | auto wins |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, presets in record["models"].items():
        for preset, row in presets.items():
            mode = row["postprocess"] or "raw"
            fallback, auto = row["fallback"], row["auto"]
            lines.append(
                f"| {model} | {preset} | {mode} | {layer_span(fallback['layers'])}: {fallback['raw']:.3f} | "
                f"{layer_span(auto['layers'])}: {auto['raw']:.3f} | {fallback[mode]:.3f} | {auto[mode]:.3f} | "
                f"{'yes' if auto[mode] > fallback[mode] else 'no'} |"
            )
    return "\n".join(lines)


def layer_span(layers: list[int]) -> str:
    """A sorted layer set as text: `"12-14"` when contiguous, else `"12,27,29"`."""
    contiguous = layers == list(range(layers[0], layers[-1] + 1))
    return f"{layers[0]}-{layers[-1]}" if contiguous and len(layers) > 1 else ",".join(map(str, layers))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Score the variant's windows on every model of the study and write one JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--variant", required=True, help="a variant label of the study")
    parser.add_argument("--models", nargs="+", help="only these models of the study (default: all)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    study = json.loads(args.study.read_text(encoding="utf-8"))
    tasks = build_tasks(SIZES[study["sizes"]])
    record = {"variant": args.variant, "sizes": study["sizes"], "models": {}}
    for model, entry in study["models"].items():
        if args.models and model not in args.models:
            continue
        if args.variant not in entry["variants"]:
            raise SystemExit(f"{args.variant!r} is not a variant of the study of {model}")
        record["models"][model] = model_rows(model, entry, args.variant, tasks, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(render_markdown(record))
    return record


if __name__ == "__main__":
    main()
