"""Tables, figures and claim verdicts from the benchmark's JSON results.

    python -m benchmarks.report            # prints Markdown, writes PNGs to benchmarks/results/

Nothing here measures anything: every figure comes from the files in
`benchmarks/results/` that `benchmarks.quality`, `benchmarks.long_docs` and
`benchmarks.speed` wrote, so the text and the data cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
START, END = "<!-- report:start -->", "<!-- report:end -->"
METRIC_SHORT = {"spearman": "Spearman", "ndcg@10": "nDCG@10", "accuracy": "acc.", "v_measure": "V-meas."}


def load(folder: Path, pattern: str) -> list[dict[str, Any]]:
    """Every JSON record matching `pattern` in `folder`, sorted by name."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob(pattern))]


def mean(values: list[float]) -> float:
    """Arithmetic mean."""
    return sum(values) / len(values)


def quality_table(record: dict[str, Any], baselines: dict[str, Any] | None, key: str = "scores") -> str:
    """Markdown: one row per configuration, one column per task, plus the mean."""
    tasks = list(record["tasks"])
    head = " | ".join(f"{task} ({METRIC_SHORT.get(record['tasks'][task]['metric'], '')})" for task in tasks)
    lines = [f"| recipe @ layers | {head} | mean |", "|---" * (len(tasks) + 2) + "|"]
    rows = dict(record[key])
    if baselines:
        rows.update({f"*{name}*": scores for name, scores in baselines["scores"].items()})
    best = {task: max(scores[task] for scores in rows.values()) for task in tasks}
    for name, scores in rows.items():
        cells = [f"**{scores[t]:.3f}**" if scores[t] == best[t] else f"{scores[t]:.3f}" for t in tasks]
        lines.append(f"| {name} | {' | '.join(cells)} | {mean([scores[t] for t in tasks]):.3f} |")
    return "\n".join(lines)


def layers_line(record: dict[str, Any]) -> str:
    """The calibrated and fallback layers of each calibrated preset."""
    parts = []
    for preset, choice in record["layers"].items():
        parts.append(f"{preset}: auto {span(choice['auto'])}, fallback {span(choice['fallback'])}")
    return f"{record['model']} ({record['num_layers']} layers): " + "; ".join(parts)


def span(layers: list[int]) -> str:
    """`[9, 10, 11]` -> `9-11` when consecutive."""
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


def plot_sweeps(records: list[dict[str, Any]], path: Path) -> Path:
    """Score vs layer for VA, hidden-state mean, WVA and AlignedWVA, one row per model, calibrated layers shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(records[0]["sweep"]["va"])
    figure = Figure(figsize=(5.0 * len(tasks), 3.2 * len(records)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(records), len(tasks), squeeze=False)
    for row, record in zip(axes, records, strict=True):
        count = record["num_layers"]
        for axis, task in zip(row, tasks, strict=True):
            for name, style in (("va", "-o"), ("hs-mean", "-s"), ("aligned-wva", "-^"), ("wva", ":.")):
                depth = [layer / (count - 1) for layer in range(count)]
                axis.plot(depth, record["sweep"][name][task], style, markersize=3, label=name)
            auto = record["layers"]["va"]["auto"]
            axis.axvspan(auto[0] / (count - 1), auto[-1] / (count - 1), alpha=0.15, color="tab:blue", label="va auto")
            kv = record["layers"]["kv"]["auto"]
            axis.axvspan(kv[0] / (count - 1), kv[-1] / (count - 1), alpha=0.12, color="tab:red", label="kv auto")
            axis.set_title(f"{record['model']}: {task}", fontsize=9)
            axis.set_xlabel("layer depth (layer / (L-1))")
            axis.set_ylabel(METRIC_SHORT.get(record["tasks"][task]["metric"], task))
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def plot_long_docs(records: list[dict[str, Any]], path: Path) -> Path:
    """nDCG@10 vs document length for each preset and TF-IDF."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(records), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(records), squeeze=False)[0]
    for axis, record in zip(axes, records, strict=True):
        for name, scores in record["scores"].items():
            lengths = [int(length) for length in scores]
            axis.plot(lengths, list(scores.values()), "--" if name == "tf-idf" else "-o", label=name)
        axis.set_xscale("log", base=2)
        axis.set_xlabel("document tokens")
        axis.set_ylabel("nDCG@10")
        axis.set_title(f"{record['model']}: {record['pages']} library pages", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def long_docs_table(record: dict[str, Any]) -> str:
    """Markdown: nDCG@10 at each document length (run times here come from a shared CPU: not a speed figure)."""
    lengths = [str(length) for length in record["lengths"]]
    lines = [f"| {record['model']}, {record['pages']} pages | " + " | ".join(f"{n} tok" for n in lengths) + " |"]
    lines.append("|---" * (len(lengths) + 1) + "|")
    for name, scores in record["scores"].items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[n]:.3f}" for n in lengths) + " |")
    return "\n".join(lines)


def ranking_table(records: list[dict[str, Any]]) -> str:
    """Markdown: each configuration's mean over tasks per model, and its mean over the models (best first)."""
    names = [name for name in records[0]["scores"] if all(name in record["scores"] for record in records)]
    per_model = {name: [mean(list(record["scores"][name].values())) for record in records] for name in names}
    head = " | ".join(f"{record['model']} ({record['sizes']})" for record in records)
    lines = [f"| recipe @ layers | {head} | mean over models |", "|---" * (len(records) + 2) + "|"]
    for name in sorted(names, key=lambda n: -mean(per_model[n])):
        cells = " | ".join(f"{value:.3f}" for value in per_model[name])
        lines.append(f"| {name} | {cells} | {mean(per_model[name]):.3f} |")
    return "\n".join(lines)


def bias_table(records: list[dict[str, Any]]) -> str:
    """Markdown: KV-Embedding's scores at each prefix bias."""
    lines = []
    for record in records:
        sweep = record.get("bias_sweep") or {}
        if not sweep:
            continue
        tasks = list(next(iter(sweep.values())))
        lines.append(f"| {record['model']}: b | " + " | ".join(tasks) + " |")
        lines.append("|---" * (len(tasks) + 1) + "|")
        for bias, scores in sorted(sweep.items(), key=lambda item: float(item[0])):
            lines.append(f"| {bias} | " + " | ".join(f"{scores[t]:.3f}" for t in tasks) + " |")
        lines.append("")
    return "\n".join(lines)


def speed_sections(records: list[dict[str, Any]]) -> list[str]:
    """The speed benchmark's own Markdown (`benchmarks.speed.render_markdown`), headings one level down."""
    from benchmarks.speed import render_markdown

    out = []
    for record in records:
        text = render_markdown(record).replace("\n## ", "\n#### ")
        title, body = text.removeprefix("# ").split("\n", 1)
        settings = record["settings"]
        out += ["", f"### {title} ({', '.join(settings['models'])}; layers: {settings['layers']})\n{body}"]
    return out


def default_configuration() -> str:
    """The default recipe's benchmark configuration and post-processing variant, e.g. `va@fallback/center`."""
    from benchmarks.report_retrieval import PRESET_CONFIGS
    from vaembed.recipes.presets import DEFAULT_RECIPE, PRESET_RECIPES

    mode = PRESET_RECIPES[DEFAULT_RECIPE].postprocess
    return f"{PRESET_CONFIGS[DEFAULT_RECIPE]}/{'raw' if mode == 'none' else mode}"


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown report and write the figures."""
    from benchmarks.claims import claims_markdown
    from benchmarks.report_retrieval import (
        combined_table,
        hybrid_table,
        lexical_section,
        postprocess_summary,
        postprocess_table,
        size_table,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--sizes", nargs="+", default=["standard", "small"])
    parser.add_argument("--readme", type=Path, default=None, help="replace the text between the report markers")
    args = parser.parse_args(argv)
    records, baselines = [], {}
    for sizes in args.sizes:
        found = load(args.results, f"quality-*-{sizes}.json")
        records += [r for r in found if r["model"] != "baselines"]
        for record in found:
            if record["model"] == "baselines":
                baselines[sizes] = record
    partial = [r for sizes in args.sizes for r in load(args.results, f"partial-quality-*-{sizes}.json")]
    long_docs = load(args.results, "long_docs-*.json")
    base = args.readme.parent if args.readme is not None else Path.cwd()

    def image(path: Path) -> str:
        return Path(os.path.relpath(path, base)).as_posix()

    out = []
    default = default_configuration()
    for record in records:
        texts = ", ".join(f"{task} {info['texts']}" for task, info in record["tasks"].items())
        out += [f"### {record['model']} ({record['sizes']} sizes: texts per task: {texts})", ""]
        out += [layers_line(record), "", quality_table(record, baselines.get(record["sizes"])), ""]
        if "scores_center" not in record:
            command = f"python -m benchmarks.quality --models {record['model']} --sizes {record['sizes']}"
            out += [
                f"No post-processing or hybrid rows in this result (an earlier benchmark version): `{command}`.",
                "",
            ]
            continue
        out += ["Post-processing (mean over the five tasks, and the two retrieval tasks): raw; centred and "
                "standardised with the model's statistics over the bundled corpus; standardised on each task's "
                "own documents:", "", postprocess_table(record), ""]  # fmt: skip
        out += ["Hybrid retrieval (nDCG@10):", "", hybrid_table(record, baselines.get(record["sizes"]), default), ""]
    current = [r for r in records if "scores_center" in r]  # results with post-processing and hybrid rows
    if records:
        out += ["Mean over the five tasks, per model (unstandardised), best first:", "", ranking_table(records), ""]
        rule = "Post-processing per preset (mean over models of the mean over tasks), and the rule's choice"
        scope = "; partial records count for the presets they score" if partial else ""
        out += [f"{rule} (`benchmarks/report_retrieval.choose_postprocess`{scope}):", "",
                postprocess_summary(current + partial), ""]  # fmt: skip
        experiments = current + [r for r in partial if "lexical" in r]  # a partial record with both passes has them
        lexical, earned = lexical_section(experiments)
        verdict = "earns" if earned else "does not earn"
        lexical_head = f"Lexical readout (PromptReps-style, from the PromptEOL pass; nDCG@10): it {verdict} a place"
        out += [f"{lexical_head} (fusion with it must beat dense + BM25 on two models or more).", "", lexical, ""]
        out += ["Concatenated readouts (value mean + AlignedWVA, each post-processed and normalised):", "",
                combined_table(experiments), ""]  # fmt: skip
        for sizes in args.sizes:
            chosen = [r for r in current if r["sizes"] == sizes]
            if chosen:
                head = f"Best recipe per task by model size ({sizes} sizes; retrieval: best dense and best hybrid)"
                out += [f"{head}, beside the baselines:", "", size_table(chosen, baselines.get(sizes)), ""]
        out.append(f"![layer sweeps]({image(plot_sweeps(records, args.results / 'layer_sweeps.png'))})")
        out += ["", bias_table(records)]
    for record in long_docs:
        out += [long_docs_table(record), ""]
    if long_docs:
        out.append(f"![long documents]({image(plot_long_docs(long_docs, args.results / 'long_docs.png'))})")
    out += ["", claims_markdown(records, long_docs)]
    out += speed_sections(load(args.results, "speed-*.json"))
    text = "\n".join(out)
    if args.readme is None:
        print(text)
        return
    readme = args.readme.read_text()
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise ValueError(f"{args.readme} must hold the markers {START} and {END} once each")
    head, rest = readme.split(START)
    args.readme.write_text(head + START + "\n" + text + "\n" + END + rest.split(END)[1])


if __name__ == "__main__":
    main()
