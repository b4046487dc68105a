"""Report tables for post-processing, hybrid retrieval, the two experiments and model size.

Every table is computed from the quality JSON records (`benchmarks.quality`),
like the rest of `benchmarks.report`. `choose_postprocess` states the rule the
presets' default post-processing follows; a test checks the library's defaults
against it on the committed results.
"""

from __future__ import annotations

from typing import Any

from vaembed.recipes.presets import CALIBRATED_PRESETS, PRESET_RECIPES

__all__ = [
    "RETRIEVAL_TASKS",
    "choose_postprocess",
    "combined_table",
    "hybrid_table",
    "lexical_section",
    "postprocess_summary",
    "postprocess_table",
    "size_table",
]

RETRIEVAL_TASKS = ("faq-retrieval", "library-retrieval")
CORPUS_FREE = ("raw", "center", "standardize")
KEYS = {"raw": "scores", "center": "scores_center", "standardize": "scores_standardize"}
PRESET_CONFIGS = {
    name: f"{name}@{'auto' if recipe.needs_calibration else 'fallback'}" if name in CALIBRATED_PRESETS else name
    for name, recipe in PRESET_RECIPES.items()
}
"""The benchmark configuration each preset runs by default (its layers follow the preset)."""
MODEL_SIZES = {
    "smollm2-135m": "135M",
    "gemma3-270m": "270M",
    "qwen2.5-coder-0.5b": "0.5B",
    "qwen2.5-coder-1.5b": "1.5B",
}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _row(label: str, cells: list[Any]) -> str:
    return f"| {label} | " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |"


def _task_mean(record: dict[str, Any], variant: str, config: str) -> float:
    return _mean(list(record[KEYS[variant]][config].values()))


def choose_postprocess(records: list[dict[str, Any]], config: str) -> tuple[str, dict[str, float]]:
    """The default rule: the corpus-free variant with the best mean over models (of each model's task mean).

    Only variants whose retrieval scores, averaged over models, are not below the
    raw ones on either retrieval task qualify.

    Returns:
        The variant and each variant's mean over models.
    """
    means = {v: _mean([_task_mean(r, v, config) for r in records]) for v in CORPUS_FREE}

    def retrieval(variant: str, task: str) -> float:
        return _mean([r[KEYS[variant]][config][task] for r in records])

    allowed = [v for v in CORPUS_FREE if all(retrieval(v, t) >= retrieval("raw", t) - 1e-9 for t in RETRIEVAL_TASKS)]
    return max(allowed, key=lambda v: (means[v], v == "raw")), means


def postprocess_table(record: dict[str, Any]) -> str:
    """Markdown: per configuration, the mean over tasks for each variant and the two retrieval tasks."""
    variants = ("raw", "center", "standardize", "task-standardize")
    keys = {**KEYS, "task-standardize": "scores_task_standardize"}
    head = (
        " | ".join(f"mean {v}" for v in variants)
        + " | "
        + " | ".join(f"{t.split('-')[0]} {v}" for t in RETRIEVAL_TASKS for v in CORPUS_FREE)
    )
    lines = [f"| recipe @ layers | {head} |", "|---" * (1 + len(variants) + 2 * len(CORPUS_FREE)) + "|"]
    for config in record["scores"]:
        means = [_mean(list(record[keys[v]][config].values())) for v in variants]
        retrieval = [record[KEYS[v]][config][t] for t in RETRIEVAL_TASKS for v in CORPUS_FREE]
        lines.append(f"| {config} | " + " | ".join(f"{x:.3f}" for x in means + retrieval) + " |")
    return "\n".join(lines)


def postprocess_summary(records: list[dict[str, Any]]) -> str:
    """Markdown: each preset's chosen post-processing by `choose_postprocess`, with the means behind it.

    Each preset counts the records that score its configuration (a partial record scores some presets).
    """
    lines = ["| preset (configuration) | models | raw | center | standardize | chosen |", "|---|---|---|---|---|---|"]
    for preset, config in PRESET_CONFIGS.items():
        scoring = [r for r in records if config in r["scores"]]
        if not scoring:
            continue
        chosen, means = choose_postprocess(scoring, config)
        cells = " | ".join(f"{means[v]:.3f}" for v in CORPUS_FREE)
        lines.append(f"| {preset} ({config}) | {len(scoring)} | {cells} | {chosen} |")
    return "\n".join(lines)


def _best_dense(record: dict[str, Any], task: str) -> tuple[str, float]:
    best = max(((c, v) for c in record["scores"] for v in CORPUS_FREE), key=lambda cv: record[KEYS[cv[1]]][cv[0]][task])
    return f"{best[0]}/{best[1]}", record[KEYS[best[1]]][best[0]][task]


def _best_hybrid(record: dict[str, Any], task: str) -> tuple[str, float]:
    found = [
        (f"{config}/{variant} {fusion}", scores[task])
        for config, variants in record["hybrid"].items()
        for variant, fusions in variants.items()
        for fusion, scores in fusions.items()
    ]
    return max(found, key=lambda item: item[1])


def hybrid_table(record: dict[str, Any], baselines: dict[str, Any] | None, default: str) -> str:
    """Markdown: lexical baselines, the default dense configuration and its fusions, and the best of each."""
    lines = ["| retriever | " + " | ".join(RETRIEVAL_TASKS) + " |", "|---|---|---|"]
    if baselines:
        for name, scores in {**baselines.get("retrieval_only", {}), **baselines["scores"]}.items():
            lines.append(f"| *{name}* | " + " | ".join(f"{scores[t]:.3f}" for t in RETRIEVAL_TASKS) + " |")
    config, variant = default.split("/")
    lines.append(_row(f"{default} (default)", [record[KEYS[variant]][config][t] for t in RETRIEVAL_TASKS]))
    for fusion, scores in record["hybrid"][config][variant].items():
        lines.append(_row(f"{default} + BM25, {fusion}", [scores[t] for t in RETRIEVAL_TASKS]))
    for label, best in (("best dense", _best_dense), ("best hybrid", _best_hybrid)):
        found = [best(record, t) for t in RETRIEVAL_TASKS]
        lines.append(f"| {label} | " + " | ".join(f"{score:.3f} ({name})" for name, score in found) + " |")
    return "\n".join(lines)


def lexical_section(records: list[dict[str, Any]]) -> tuple[str, bool]:
    """Markdown for the lexical readout, and whether fusion with it beat dense + BM25 on at least two models.

    The rule fuses the same dense configurations (`benchmarks.experiments.FUSED_WITH`)
    with BM25 and with the lexical readout; the last column, the model's best
    dense + BM25 hybrid over every preset, is shown beside it but not counted.
    """
    lines = [
        "| model | task | lexical alone | lexical + BM25 | best dense + BM25 | best dense + lexical | best dense + BM25 + lexical | best hybrid, any preset |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    for record in records:
        lexical, won = record["lexical"], False
        if "skipped" in lexical:
            lines.append(f"| {record['model']} | - | skipped: {lexical['skipped']} | | | | | |")
            continue
        for task in RETRIEVAL_TASKS:
            pair = max(lexical["dense_bm25"][k][task] for k in lexical["dense_bm25"])
            with_dense = max(max(v[task].values()) for v in lexical["with_dense"].values())
            triple = max(max(v[task].values()) for v in lexical["with_dense_and_bm25"].values())
            won = won or max(with_dense, triple) > pair
            cells = [lexical["alone"][task], max(lexical["with_bm25"][task].values()), pair, with_dense, triple]
            cells.append(_best_hybrid(record, task)[1])
            lines.append(f"| {record['model']} | {task} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        wins += won
    return "\n".join(lines), wins >= 2


def combined_table(records: list[dict[str, Any]]) -> str:
    """Markdown: the concatenated readouts beside `va` and `aligned-wva` (mean over tasks, and retrieval)."""
    lines = ["| model | readout | variant | mean | " + " | ".join(RETRIEVAL_TASKS) + " |", "|---|---|---|---|---|---|"]
    for record in records:
        rows = {name: entry["scores"] for name, entry in record["combined"].items()}
        for config in ("va@fallback", "aligned-wva@fallback"):
            rows[config] = {v: record[KEYS[v]][config] for v in CORPUS_FREE}
        for name, variants in rows.items():
            for variant, scores in variants.items():
                cells = [_mean(list(scores.values())), *(scores[t] for t in RETRIEVAL_TASKS)]
                lines.append(_row(f"{record['model']} | {name} | {variant}", cells))
    return "\n".join(lines)


def size_table(records: list[dict[str, Any]], baselines: dict[str, Any] | None) -> str:
    """Markdown: per task, the best recipe (any preset and corpus-free variant; hybrid for retrieval) by model size."""
    tasks = list(records[0]["tasks"])
    lines = ["| model | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for record in sorted(
        records, key=lambda r: list(MODEL_SIZES).index(r["model"]) if r["model"] in MODEL_SIZES else 99
    ):
        size = MODEL_SIZES.get(record["model"], "?")
        cells = []
        for task in tasks:
            name, score = _best_dense(record, task)
            cell = f"{score:.3f}"
            if task in RETRIEVAL_TASKS:
                cell += f" (hybrid {_best_hybrid(record, task)[1]:.3f})"
            cells.append(cell)
        lines.append(f"| {record['model']} ({size}, {record['sizes']}) | " + " | ".join(cells) + " |")
    if baselines:
        rows = {**{k: v for k, v in baselines.get("retrieval_only", {}).items()}, **baselines["scores"]}
        for name, scores in rows.items():
            lines.append(
                f"| *{name}* | " + " | ".join(f"{scores[t]:.3f}" if t in scores else "-" for t in tasks) + " |"
            )
    return "\n".join(lines)
