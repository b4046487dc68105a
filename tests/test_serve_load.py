"""The load-test benchmark on a small bounded run, so its code cannot rot (real model, real uvicorn)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "serve_load.py"


def load_script():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_cycle_through_the_corpus_with_bounded_sizes():
    plan = load_script().plan_requests(50, ["t"] * 7, max_texts=3)
    assert len(plan) == 50
    assert all(1 <= len(request) <= 3 for request in plan)
    flat = [i for request in plan for i in request]
    assert flat == [k % 7 for k in range(len(flat))]


@pytest.mark.real_model
def test_a_small_load_test_has_no_errors_and_matching_vectors(real_embedder, tmp_path):
    out = tmp_path / "load.json"
    argv = ["--clients", "1,8", "--requests", "16", "--passages", "48", "--max-texts", "3", "--out", str(out)]
    result = load_script().main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [level["clients"] for level in result["levels"]] == [1, 8]
    for level in result["levels"]:
        assert level["errors"] == 0, level["first_errors"]
        assert level["requests"] == 16 and level["texts_per_s"] > 0
    assert result["server_batching"]["largest_batch"] > 1
    assert result["server_peak_rss_mib"] > 100


@pytest.mark.real_model
def test_an_overload_run_gets_429s_with_retry_after_and_no_timeouts(real_embedder, tmp_path):
    argv = ["--clients", "24", "--requests", "24", "--passages", "48", "--max-texts", "3", "--max-queue", "4"]
    argv += ["--timeout", "60", "--out", str(tmp_path / "overload.json")]
    (level,) = load_script().main(argv)["levels"]
    assert level["errors"] == 0, level["first_errors"]
    assert level["timeouts"] == 0
    assert level["rejected_429"] > 0 and level["accepted"] > 0
    assert level["rejected_429"] + level["accepted"] == 24
    assert level["max_retry_after_s"] >= 1
