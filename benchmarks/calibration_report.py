"""Tables of a calibration study (`benchmarks/calibration_study.py`): which probe lands on the useful layers.

    python -m benchmarks.calibration_report benchmarks/results/calibration-study.json

Per model and preset: the best window of the supervised sweep, the fallback
window, the shipped probes (`default`, `kv-paper`) and the best variant, each
with its window, score (mean over the five tasks for the readouts, over FAQ
retrieval and Lee STS for `kv`) and the gap between the windows chosen on two
disjoint halves of the corpus. Then every variant ranked by its mean regret
over the readout presets (sweep best minus its score), and the best of those
whose two halves agree within one layer: the probe a default should follow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["SHIPPED", "across_models", "ranked_variants", "render_markdown"]

SHIPPED = {
    "mean-residual": "residual-mean/none/96t/330/interior-min",
    "methods": "residual-last/none/96t/330/interior-min",
    "kv-paper": "residual-last/compress/96t/330/interior-min",
}
"""The study's labels of the probes `vaembed.calibration.probe.PROBES` ships."""
READOUT_PRESETS = ("va", "wva", "aligned-wva")
STABLE_GAP = 1
"""Largest gap (layers) between the windows of the two disjoint halves for a variant to count as stable."""


def _window(layers: list[int]) -> str:
    return (
        f"{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else ",".join(map(str, layers))
    )


def ranked_variants(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every variant with its mean regret over the readout presets, best (lowest regret) first."""
    best = {preset: max(model["sweep"][preset].values()) for preset in READOUT_PRESETS}
    rows = []
    for label, entry in model["variants"].items():
        regrets = [best[preset] - entry[preset]["score"] for preset in READOUT_PRESETS]
        beats = sum(entry[preset]["score"] >= model["fallback_score"][preset] for preset in READOUT_PRESETS)
        gaps = [entry[preset]["halves_gap"] for preset in (*READOUT_PRESETS, "kv")]
        rows.append({"label": label, "regret": sum(regrets) / len(regrets), "beats_fallback": beats,
                     "max_halves_gap": max(gaps), "kv": entry["kv"]["score"]})  # fmt: skip
    return sorted(rows, key=lambda row: (row["regret"], row["label"]))


def across_models(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every variant studied on all models, ranked by its mean regret over the models (each model's mean regret).

    Each row also holds the worst model's regret, on how many (model, readout
    preset) pairs the variant's window scores at least the fallback window, the
    largest halves gap over models and presets (`kv` included), and each model's
    regret.
    """
    models = record["models"]
    per_model = {name: {row["label"]: row for row in ranked_variants(model)} for name, model in models.items()}
    labels = set.intersection(*(set(rows) for rows in per_model.values())) if per_model else set()
    out = []
    for label in labels:
        rows = {name: rows[label] for name, rows in per_model.items()}
        regrets = [row["regret"] for row in rows.values()]
        out.append({"label": label, "regret": sum(regrets) / len(regrets), "worst": max(regrets),
                    "beats_fallback": sum(row["beats_fallback"] for row in rows.values()),
                    "max_halves_gap": max(row["max_halves_gap"] for row in rows.values()),
                    "models": {name: row["regret"] for name, row in rows.items()}})  # fmt: skip
    return sorted(out, key=lambda row: (row["regret"], row["label"]))


def _across_table(record: dict[str, Any], top_n: int) -> list[str]:
    ranked = across_models(record)
    names = list(record["models"])
    stable = [row for row in ranked if row["max_halves_gap"] <= STABLE_GAP]
    pairs = len(names) * len(READOUT_PRESETS)
    lines = [
        f"#### Across models ({', '.join(names)})",
        "",
        f"Variants ranked by mean regret over the models: the first {top_n}, the shipped probes, and the first "
        f"{top_n} whose halves agree within {STABLE_GAP} layer on every model and preset ({len(stable)} of "
        f"{len(ranked)}):",
        "",
        f"| variant | mean regret | worst model | {' | '.join(names)} | beats fallback (of {pairs}) | "
        "largest halves gap |",
        "|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    shown = ranked[:top_n] + [row for row in ranked[top_n:] if row["label"] in SHIPPED.values()]
    shown += [row for row in stable[:top_n] if row not in shown]
    for row in shown:
        cells = " | ".join(f"{row['models'][name]:.3f}" for name in names)
        lines.append(
            f"| {ranked.index(row) + 1}. {row['label']} | {row['regret']:.3f} | {row['worst']:.3f} | {cells} | "
            f"{row['beats_fallback']} | {row['max_halves_gap']} |"
        )
    return [*lines, ""]


def _preset_table(model: dict[str, Any], top: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| preset | sweep best | fallback | mean-residual probe (the default) | methods probe | kv-paper probe | "
        "best variant by mean regret |",
        "|---|---|---|---|---|---|---|",
    ]
    kv_fallback = model["kv_scores"]["-".join(map(str, model["kv_fallback"]))]
    for preset in (*READOUT_PRESETS, "kv"):
        if preset == "kv":
            sweep = "-"
            fallback = f"{_window(model['kv_fallback'])}: {kv_fallback:.3f}"
        else:
            window, score = max(model["sweep"][preset].items(), key=lambda item: item[1])
            sweep = f"{window.split('-')[0]}-{window.split('-')[-1]}: {score:.3f}"
            fallback = f"{_window(model['fallback'])}: {model['fallback_score'][preset]:.3f}"
        cells = []
        for label in (SHIPPED["mean-residual"], SHIPPED["methods"], SHIPPED["kv-paper"], top[0]["label"]):
            chosen = model["variants"].get(label, {}).get(preset)
            cells.append(
                "-"
                if chosen is None
                else f"{_window(chosen['layers'])}: {chosen['score']:.3f} (halves gap {chosen['halves_gap']})"
            )
        lines.append(f"| {preset} | {sweep} | {fallback} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(record: dict[str, Any], top_n: int = 10) -> str:
    """The study as markdown: per model, the preset table and the variants ranked by mean regret."""
    out: list[str] = []
    for name, model in record["models"].items():
        ranked = ranked_variants(model)
        stable = [row for row in ranked if row["max_halves_gap"] <= STABLE_GAP]
        out += [f"#### {name} ({model['num_layers']} layers, windows of {model['width']}; sizes {record['sizes']})", ""]
        out += [*_preset_table(model, ranked), ""]
        out += [
            f"Variants ranked by mean regret over {', '.join(READOUT_PRESETS)} "
            f"(of {len(ranked)}; representation/prompt/tokens/texts/rule):",
            "",
            f"The first {top_n}, the shipped probes, and the first {top_n} whose disjoint halves agree within "
            f"{STABLE_GAP} layer ({len(stable)} of {len(ranked)} do):",
            "",
            "| variant | mean regret | beats fallback (of 3) | largest halves gap | kv score |",
            "|---|---|---|---|---|",
        ]
        shown = ranked[:top_n] + [row for row in ranked[top_n:] if row["label"] in SHIPPED.values()]
        shown += [row for row in stable[:top_n] if row not in shown]
        for row in shown:
            place = ranked.index(row) + 1
            out.append(
                f"| {place}. {row['label']} | {row['regret']:.3f} | {row['beats_fallback']} | "
                f"{row['max_halves_gap']} | {row['kv']:.3f} |"
            )
        out.append("")
    if len(record["models"]) > 1:
        out += _across_table(record, top_n)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> str:
    """Print the tables of a study's JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--top", type=int, default=10, help="variants shown (the shipped probes always are)")
    args = parser.parse_args(argv)
    text = render_markdown(json.loads(args.study.read_text(encoding="utf-8")), args.top)
    print(text)
    return text


if __name__ == "__main__":
    main()
