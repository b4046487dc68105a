"""Rank-1 retrieval on the adapters' 20-note test set, for each value/KV recipe and layer choice.

A small diagnostic, not a benchmark: 5 questions over 20 notes
(integrations/llama-index-embeddings-vaembed/tests/data/notes.json). It shows
how the calibrated ("auto") window compares with the second half of the layers
("fallback") and two fixed windows on the default model.

    VAEMBED_CACHE=/tmp/vcache python benchmarks/notes_layer_probe.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vaembed import Embedder

DATA = Path(__file__).parents[1] / "integrations/llama-index-embeddings-vaembed/tests/data/notes.json"


def main() -> None:
    """Print, per recipe and layer choice, how many questions find their note first, and each note's rank."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    data = json.loads(DATA.read_text())
    keys = list(data["notes"])
    questions = list(data["questions"])
    answers = [keys.index(data["questions"][q]) for q in questions]
    base = Embedder.from_pretrained(args.model, "hs-mean")
    third = base.num_layers // 3
    choices = {"auto": "auto", "fallback": "fallback", "2/3 depth": [2 * third, 2 * third + 1, 2 * third + 2]}
    print(f"{'recipe':12s} {'layers':10s} {'concrete':28s} rank-1  rank of the right note per question")
    for recipe in ("va", "wva", "aligned-wva", "kv"):
        for label, layers in choices.items():
            embedder = base.with_recipe(recipe, layers)
            scores = embedder.encode_query(questions) @ embedder.encode([data["notes"][k] for k in keys]).T
            ranks = [int((row > row[answer]).sum()) for row, answer in zip(scores, answers, strict=True)]
            hits = sum(rank == 0 for rank in ranks)
            concrete = (
                str(embedder.layers) if len(embedder.layers) <= 4 else f"[{embedder.layers[0]}..{embedder.layers[-1]}]"
            )
            print(f"{recipe:12s} {label:10s} {concrete:28s} {hits}/{len(questions)}     {ranks}")
    print(f"\nmodel {args.model}: {base.num_layers} layers")


if __name__ == "__main__":
    main()
