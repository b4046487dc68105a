"""Long-document retrieval as documents grow from 512 to 4k tokens (LoCoV1 style).

    python -m benchmarks.long_docs --model smollm2-135m --pages 16 --presets kv prompteol hs-mean

Queries are library modules' synopsis lines; documents are their reference
pages (`vaembed.datasets.python_library_pages`), restricted to pages of at least
`max(--lengths)` tokens so that every length cuts every page. At each length L
each page is cut to its first L tokens (the model's own tokenizer; the prompt's
tokens come on top, so every preset sees the same text) and nDCG@10 is scored
for each preset and for TF-IDF on the same cut text. The question: does
KV-Embedding hold its quality as L grows while last-token pooling degrades?
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from benchmarks.python_docs import python_library_pages
from vaembed import Embedder
from vaembed.calibration.devset import ndcg_at_10

RESULTS = Path(__file__).parent / "results"
PROMPT_ROOM = 64  # tokens of prompt a template may add around the cut text


def long_pages(tokenizer: Any, min_tokens: int, count: int) -> tuple[list[str], list[list[int]]]:
    """The first `count` (query, page token ids) pairs whose page has at least `min_tokens` tokens."""
    pages = python_library_pages()
    queries, ids = [], []
    for query_index, query in enumerate(pages.queries):
        tokens = tokenizer(pages.documents[pages.relevant[query_index]], add_special_tokens=False)["input_ids"]
        if len(tokens) >= min_tokens:
            queries.append(query)
            ids.append(tokens)
        if len(queries) == count:
            break
    if len(queries) < count:
        raise ValueError(f"only {len(queries)} pages have {min_tokens} tokens or more; ask for fewer")
    return queries, ids


def ndcg(queries: np.ndarray, documents: np.ndarray) -> float:
    """nDCG@10 where query i's relevant document is document i."""
    return float(ndcg_at_10(queries @ documents.T, [frozenset({i}) for i in range(len(queries))]))


def tfidf_scores(queries: list[str], documents: list[str]) -> float:
    """TF-IDF (sublinear tf) nDCG@10 on the same texts."""
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(documents + queries)
    q = vectorizer.transform(queries).toarray()
    d = vectorizer.transform(documents).toarray()
    return ndcg(q, d)


def run(model: str, presets: list[str], lengths: list[int], pages: int, layers: str) -> dict[str, Any]:
    """Score each preset at each length; returns the result record."""
    base = Embedder.from_pretrained(model, recipe="hs-mean", max_length=max(lengths) + PROMPT_ROOM)
    queries, ids = long_pages(base.tokenizer, max(lengths), pages)
    record: dict[str, Any] = {"model": model, "pages": pages, "lengths": lengths, "scores": {}, "seconds_per_doc": {}}
    cut = {length: [base.tokenizer.decode(page[:length]) for page in ids] for length in lengths}
    record["scores"]["tf-idf"] = {str(length): round(tfidf_scores(queries, cut[length]), 4) for length in lengths}
    record["layers"] = {}
    for preset in presets:
        chosen = layers if preset in ("va", "wva", "aligned-wva", "kv") else None
        if preset == "kv" and layers == "fallback":
            chosen = "kv-fallback"
        embedder = base.with_recipe(preset, chosen)
        record["layers"][preset] = embedder.layers
        query_vectors = embedder.encode(queries, role="query")
        record["scores"][preset], record["seconds_per_doc"][preset] = {}, {}
        for length in lengths:
            start = time.perf_counter()
            documents = embedder.encode(cut[length], role="document", batch_size=4)
            seconds = (time.perf_counter() - start) / len(ids)
            record["scores"][preset][str(length)] = round(ndcg(query_vectors, documents), 4)
            record["seconds_per_doc"][preset][str(length)] = round(seconds, 3)
            print(f"{preset} @ {length}: nDCG@10 {record['scores'][preset][str(length)]} ({seconds:.2f} s/doc)")
    return record


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--presets", nargs="+", default=["kv", "prompteol", "hs-mean"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--layers", default="auto", help="layers of the calibrated presets (auto or fallback)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default results/long_docs-<model>.json)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    record = run(args.model, args.presets, sorted(args.lengths), args.pages, args.layers)
    record["command"] = "python -m benchmarks.long_docs " + " ".join(sys.argv[1:] if argv is None else argv)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or RESULTS / f"long_docs-{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
