"""The papers' claims, checked against the benchmark's numbers: holds / does not hold, with the numbers.

Each rule is stated in `RULES` and applied to the JSON records; the README's
verdict table is printed from here (`python -m benchmarks.report`), never typed.
"""

from __future__ import annotations

from typing import Any

MARGIN = 0.01
"""A difference in mean score smaller than this is a tie ("does not hold" for a "beats" claim)."""
STABLE = 0.05
"""Largest change (absolute) that still counts as "quality holds"."""

RULES = {
    "va-deep": "VA beats hidden-state mean pooling at deeper layers: mean single-layer score over the second half "
    "of the layers, on each sweep task",
    "aligned-vs-wva": "AlignedWVA beats WVA: mean score over all tasks, same layer choice",
    "wo-alignment": "W_O alignment helps (every model here uses GQA): AlignedWVA vs the same PromptEOL pass read "
    "without W_O (`prompteol-wva`), same layers, mean over tasks",
    "kv-vs-peers": "KV-Embedding beats PromptEOL, Echo and Token Prepending: mean over tasks, kv with calibrated "
    "layers (and fallback)",
    "kv-long": f"KV-Embedding holds its nDCG@10 from 512 to 4k tokens (drop below {STABLE}) while last-token "
    f"pooling (PromptEOL) degrades (drop above {STABLE})",
    "bias": f"KV quality is stable for b up to about 3: every b in [0, 3] within {STABLE} of b = 1 on each task",
}


def _mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def _beats(a: float, b: float) -> str:
    return "holds" if a - b >= MARGIN else "does not hold"


def va_deep(record: dict[str, Any]) -> tuple[str, str]:
    """VA vs hidden-state mean at the deeper half of the layers, per sweep task."""
    half = record["num_layers"] // 2
    parts, verdicts = [], []
    for task, va in record["sweep"]["va"].items():
        hs = record["sweep"]["hs-mean"][task]
        va_deep, hs_deep = _avg(va[half:]), _avg(hs[half:])
        parts.append(f"{task}: VA {va_deep:.3f} vs HS {hs_deep:.3f}")
        verdicts.append(_beats(va_deep, hs_deep))
    tasks = list(record["sweep"]["va"])
    held = [task for task, verdict in zip(tasks, verdicts, strict=True) if verdict == "holds"]
    if 0 < len(held) < len(tasks):
        return "; ".join(parts), f"holds on {', '.join(held)} only"
    return "; ".join(parts), _all(verdicts)


def _avg(values: list[float]) -> float:
    return sum(values) / len(values)


def _all(verdicts: list[str]) -> str:
    if all(v == "holds" for v in verdicts):
        return "holds"
    if any(v == "holds" for v in verdicts):
        return "mixed"
    return "does not hold"


def compare(record: dict[str, Any], first: str, second: str) -> tuple[str, str]:
    """`first` vs `second` on the mean over tasks, for the auto and the fallback layers."""
    parts, verdicts = [], []
    for choice in ("auto", "fallback"):
        a, b = _mean(record["scores"][f"{first}@{choice}"]), _mean(record["scores"][f"{second}@{choice}"])
        parts.append(f"{choice}: {a:.3f} vs {b:.3f}")
        verdicts.append(_beats(a, b))
    if verdicts[0] != verdicts[1]:
        return "; ".join(parts), f"holds with {'calibrated' if verdicts[0] == 'holds' else 'fallback'} layers only"
    return "; ".join(parts), verdicts[0]


def kv_vs_peers(record: dict[str, Any]) -> tuple[str, str]:
    """KV-Embedding (auto, fallback) vs each peer's mean over tasks."""
    kv = {choice: _mean(record["scores"][f"kv@{choice}"]) for choice in ("auto", "fallback")}
    peers = {name: _mean(record["scores"][name]) for name in ("prompteol", "echo", "token-prepending")}
    text = f"kv auto {kv['auto']:.3f}, fallback {kv['fallback']:.3f}; " + ", ".join(
        f"{name} {value:.3f}" for name, value in peers.items()
    )
    best_kv = max(kv.values())
    beaten = [name for name, value in peers.items() if _beats(best_kv, value) == "holds"]
    if 0 < len(beaten) < len(peers):
        return text, f"beats {', '.join(beaten)} only"
    return text, "holds" if beaten else "does not hold"


def kv_long(record: dict[str, Any]) -> tuple[str, str]:
    """KV's and PromptEOL's change in nDCG@10 from the shortest to the longest length."""
    first, last = str(record["lengths"][0]), str(record["lengths"][-1])
    kv, last_token = record["scores"]["kv"], record["scores"]["prompteol"]
    kv_drop, eol_drop = kv[first] - kv[last], last_token[first] - last_token[last]
    text = (
        f"kv {kv[first]:.3f} -> {kv[last]:.3f}; prompteol {last_token[first]:.3f} -> {last_token[last]:.3f} "
        f"({first} -> {last} tokens, {record['pages']} pages)"
    )
    holds = kv_drop < STABLE and eol_drop > STABLE
    return text, "holds" if holds else "does not hold"


def bias(record: dict[str, Any]) -> tuple[str, str]:
    """Largest change from b = 1 over b in [0, 3], per task."""
    sweep = {float(b): scores for b, scores in record["bias_sweep"].items()}
    parts, verdicts = [], []
    for task, reference in sweep[1.0].items():
        within = [scores[task] for b, scores in sweep.items() if 0.0 <= b <= 3.0]
        worst = max(abs(value - reference) for value in within)
        at_five = f", b=5 {sweep[5.0][task]:.3f}" if 5.0 in sweep else ""
        parts.append(f"{task}: b=1 {reference:.3f}, largest change for b<=3 {worst:.3f}{at_five}")
        verdicts.append("holds" if worst <= STABLE else "does not hold")
    return "; ".join(parts), _all(verdicts)


def claims_markdown(records: list[dict[str, Any]], long_docs: list[dict[str, Any]]) -> str:
    """The verdict table: one row per claim and model."""
    rows = []
    for record in records:
        model = record["model"]
        rows.append(("va-deep", model, *va_deep(record)))
        rows.append(("aligned-vs-wva", model, *compare(record, "aligned-wva", "wva")))
        rows.append(("wo-alignment", model, *compare(record, "aligned-wva", "prompteol-wva")))
        rows.append(("kv-vs-peers", model, *kv_vs_peers(record)))
        if record.get("bias_sweep"):
            rows.append(("bias", model, *bias(record)))
    for record in long_docs:
        rows.append(("kv-long", record["model"], *kv_long(record)))
    lines = ["| claim | model | numbers | verdict |", "|---|---|---|---|"]
    lines += [f"| {name} | {model} | {numbers} | **{verdict}** |" for name, model, numbers, verdict in rows]
    lines += ["", "Rules:", ""] + [f"- `{name}`: {rule}" for name, rule in RULES.items()]
    return "\n".join(lines)
