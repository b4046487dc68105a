"""The corpus-size benchmark's corpora and its report (`benchmarks/calibration_corpus_size.py`)."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

from benchmarks.calibration_corpus_size import EXTRA, corpora, render_markdown
from vaembed.calibration.corpus import bundled_corpus


def _length_class(text: str) -> str:
    words = len(text.split())
    return "long" if "\n\n" in text else ("short" if words <= 25 else "medium")


def test_the_extra_texts_match_the_bundled_corpus_in_topics_lengths_and_licence():
    record = json.loads(EXTRA.read_text(encoding="utf-8"))
    assert record["licence"].startswith("CC0-1.0")
    entries = record["texts"]
    bundled = json.loads(resources.files("vaembed").joinpath("data/calibration_corpus.json").read_text("utf-8"))
    topics = Counter(entry["topic"] for entry in entries)
    assert set(topics) == {entry["topic"] for entry in bundled["texts"]} and set(topics.values()) == {11}
    per_topic = Counter((entry["topic"], _length_class(entry["text"])) for entry in entries)
    assert {count for (_, kind), count in per_topic.items() if kind == "long"} == {3}
    assert {count for (_, kind), count in per_topic.items() if kind == "short"} == {4}
    assert {count for (_, kind), count in per_topic.items() if kind == "medium"} == {4}


def test_three_corpora_of_330_330_and_660_distinct_texts():
    found = corpora()
    sizes = {name: len(texts) for name, texts in found.items()}
    assert sizes == {"bundled-330": 330, "extra-330": 330, "both-660": 660}
    assert found["bundled-330"] == list(bundled_corpus().texts)
    assert sorted(found["both-660"]) == sorted(found["bundled-330"] + found["extra-330"])
    assert len(set(found["both-660"])) == 660
    both = found["both-660"]
    halves = both[0::2], both[1::2]
    bundled = set(found["bundled-330"])
    assert all(60 < sum(text in bundled for text in half) < 270 for half in halves)  # shuffled: each half mixes both
    assert corpora()["both-660"] == both  # one fixed shuffle


def test_the_report_has_a_row_per_corpus_and_the_fallback_row():
    row = {"texts": 660, "layers": [27, 28, 29], "halves": [[27, 28, 29], [22, 27, 29]], "halves_gap": 5}
    row |= {"frequency": 0.4, "seconds": 105.4, "va": 0.638, "aligned-wva": 0.677}
    fallback = {"layers": list(range(15, 30)), "va": 0.5, "aligned-wva": 0.6}
    record = {"models": {"m": {"num_layers": 30, "fallback": fallback, "both-660": row}}}
    lines = render_markdown(record).splitlines()
    assert lines[2] == "| m | both-660 | 27-29 | 27-29 / 22,27,29 (5) | 0.40 | 105 | 0.638 | 0.677 |"
    assert lines[3] == "| m | fallback window | 15-29 | | | | 0.500 | 0.600 |"
