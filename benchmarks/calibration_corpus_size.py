r"""Does a larger calibration corpus make the disjoint halves agree, and does its window help the readouts?

    python -m benchmarks.calibration_corpus_size --models smollm2-135m gemma3-270m qwen2.5-coder-0.5b \\
        --out benchmarks/results/calibration-corpus-size.json
    python -m benchmarks.calibration_corpus_size --markdown benchmarks/results/calibration-corpus-size.json

Per model, the default calibration (`Embedder.calibrate(texts, save=False)`:
the default probe, the vote over 20 subsamples of 80%, and the same vote on
the even- and odd-positioned halves) on three corpora: the bundled 330 texts,
a second 330 written the same way on the same 30 topics
(`benchmarks/data/calibration_extra.json`, CC0-1.0), and both together (660,
shuffled once), so each half holds 330 texts. For each it records the window,
the halves and their gap (`CalibrationProfile.halves_gap`), the share of
subsamples that chose the window, and the seconds; each window (and the
fallback window) is scored for `va` and `aligned-wva` from the quality
benchmark's cached passes, standardised (their shipped post-processing), as
the mean over the five tasks (`benchmarks.calibration_defaults.window_means`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import quality
from benchmarks.calibration_defaults import READINGS, layer_span, window_means
from benchmarks.task_suite import SIZES, build_tasks
from vaembed import Embedder
from vaembed.calibration.corpus import bundled_corpus
from vaembed.recipes.layers import resolve_layers

__all__ = ["EXTRA", "corpora", "render_markdown"]

EXTRA = Path(__file__).parent / "data" / "calibration_extra.json"
"""The second 330 texts (same topics, lengths and licence as the bundled corpus)."""
SHUFFLE_SEED = 660


def corpora() -> dict[str, list[str]]:
    """The three calibration corpora: bundled, extra, and both shuffled together once.

    Raises:
        ValueError: The extra texts repeat a bundled text or each other.
    """
    bundled = list(bundled_corpus().texts)
    extra = [entry["text"] for entry in json.loads(EXTRA.read_text(encoding="utf-8"))["texts"]]
    if len(set(extra)) != len(extra) or set(extra) & set(bundled):
        raise ValueError(f"{EXTRA} must hold distinct texts that are not in the bundled corpus")
    both = bundled + extra
    random.Random(SHUFFLE_SEED).shuffle(both)
    return {"bundled-330": bundled, "extra-330": extra, "both-660": both}


def model_rows(model: str, tasks: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each corpus's calibration (window, halves, gap, vote share, seconds) and the windows' scores."""
    embedder = Embedder.from_pretrained(model, "hs-mean", max_length=args.max_length, long_text="truncate")
    layers = quality.model_layers(embedder)
    groups = {group.name: group for group in quality.groups_for(layers)}
    texts = quality.texts_by_role(tasks)
    readings = {
        preset: (quality.cached_read(embedder, groups[group], texts, args), capture)
        for preset, (group, capture) in READINGS.items()
    }
    fallback = list(resolve_layers("fallback", embedder.num_layers))
    rows: dict[str, Any] = {"num_layers": embedder.num_layers, "fallback": {"layers": fallback}}
    for preset, (reading, capture) in readings.items():
        rows["fallback"][preset] = round(window_means(tasks, reading, capture, fallback)["standardize"], 4)
    for name, corpus in corpora().items():
        start = time.perf_counter()
        profile = embedder.calibrate(corpus, save=False)
        seconds = time.perf_counter() - start
        calibration = profile.prompts["none"]
        window = list(calibration.layers)
        row = {
            "texts": len(corpus),
            "layers": window,
            "halves": [list(half) for half in calibration.halves],
            "halves_gap": calibration.halves_gap,
            "frequency": calibration.frequency,
            "seconds": round(seconds, 1),
        }
        for preset, (reading, capture) in readings.items():
            row[preset] = round(window_means(tasks, reading, capture, window)["standardize"], 4)
        rows[name] = row
        print(f"[{model}] {name}: {row}", flush=True)
    return rows


def render_markdown(record: dict[str, Any]) -> str:
    """One row per model and corpus: window, halves and gap, vote share, seconds, and the two readouts' scores."""
    lines = [
        "| model | corpus | window | halves (gap) | vote share | seconds | `va` | `aligned-wva` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rows in record["models"].items():
        for name, row in rows.items():
            if name in ("num_layers", "fallback"):
                continue
            halves = " / ".join(layer_span(half) for half in row["halves"])
            lines.append(
                f"| {model} | {name} | {layer_span(row['layers'])} | {halves} ({row['halves_gap']}) | "
                f"{row['frequency']:.2f} | {row['seconds']:.0f} | {row['va']:.3f} | {row['aligned-wva']:.3f} |"
            )
        fallback = rows["fallback"]
        lines.append(
            f"| {model} | fallback window | {layer_span(fallback['layers'])} | | | | "
            f"{fallback['va']:.3f} | {fallback['aligned-wva']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Calibrate each model on the three corpora and write one JSON file (or print a saved one as Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--sizes", choices=tuple(SIZES), default="small")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", type=Path, help="print the tables of a saved result and exit")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        record = json.loads(args.markdown.read_text(encoding="utf-8"))
        print(render_markdown(record))
        return record
    if args.out is None:
        parser.error("--out is required unless --markdown is given")
    tasks = build_tasks(SIZES[args.sizes])
    given = sys.argv[1:] if argv is None else argv
    record = {"sizes": args.sizes, "command": "python -m benchmarks.calibration_corpus_size " + " ".join(given)}
    record["models"] = {model: model_rows(model, tasks, args) for model in args.models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(render_markdown(record))
    return record


if __name__ == "__main__":
    main()
