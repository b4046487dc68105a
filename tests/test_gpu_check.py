"""The GPU check script runs end to end on tiny shapes on the CPU (the same code a GPU lease runs on real shapes)."""

from __future__ import annotations

import json
import math

import torch

from benchmarks import gpu_check
from vaembed import PRESET_RECIPES


def test_the_gpu_check_measures_every_preset_and_passes_its_checks_on_tiny_shapes(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "gpu-check.json"
    record = gpu_check.main(
        ["--tiny", "--device", "cpu", "--shapes", "llama-3-8b", "gemma-3-1b", "--lengths", "32", "96",
         "--tokens", "192", "--repeats", "1", "--out", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    assert record["passed"] is True and set(record["shapes"]) == {"llama-3-8b", "gemma-3-1b"}
    gemma = record["shapes"]["gemma-3-1b"]
    assert gemma["parameters"] < 1e6  # a tiny shape of the family
    for entry in record["shapes"].values():
        assert set(entry["checks"]) == set(PRESET_RECIPES) | {"kv_bias_minus_inf_vs_plain", "kv_fast_vs_masked"}
        assert entry["checks"]["kv_bias_minus_inf_vs_plain"] > 0.999999
        for length in ("32", "96"):
            assert set(entry["throughput"][length]) == set(PRESET_RECIPES)
            for row in entry["throughput"][length].values():
                assert math.isfinite(row["vs_bare"]) and row["vs_bare"] > 0
                assert row["tokens"] == (192 // int(length)) * int(length)
    text = gpu_check.render_markdown(record)
    assert all(f"| {preset} |" in text for preset in PRESET_RECIPES) and "Checks (smallest cosine" in text


def test_real_shapes_are_the_published_configurations():
    class_name, options = gpu_check.shape_options("llama-3-8b", tiny=False)
    assert class_name == "LlamaConfig" and options["num_key_value_heads"] == 8 and options["hidden_size"] == 4096
    _, tiny = gpu_check.shape_options("gemma-3-1b", tiny=True)
    assert tiny["num_key_value_heads"] == 1 and tiny["sliding_window"] == 64  # keeps MQA and the local layers
