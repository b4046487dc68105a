"""One conversion, one calibration: processes that start together, and processes killed half-way.

Each test runs real child processes on one fresh cache folder: a tiny GGUF file
(`vaembed.testing.save_tiny_gguf`) stands for a real model's, a tiny model folder
for post-processing statistics and calibration profiles.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vaembed.testing import save_tiny_gguf, save_tiny_model

# Embeds one text and prints where the model was read from, its vector and the statistics file.
# argv: model spec, start time (epoch seconds; all children wait for it), recipe, postprocess,
# and optionally a kill point: "save_pretrained" or "json" (the child announces it by creating
# the marker file, then stalls half-way until it is killed).
CHILD = r"""
import json, os, sys, time
spec, start, recipe, postprocess = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
stall = sys.argv[5] if len(sys.argv) > 5 else ""
marker = os.environ.get("STALL_MARKER", "")
def announce_and_stall():
    open(marker, "w").close()
    time.sleep(600)
if stall == "save_pretrained":
    import transformers
    original = transformers.PreTrainedModel.save_pretrained
    def stalled(self, *args, **kwargs):
        original(self, *args, **kwargs)  # the weights are written, the tokenizer not yet
        announce_and_stall()
    transformers.PreTrainedModel.save_pretrained = stalled
if stall == "json":
    def half_dump(obj, stream, **kwargs):
        text = json.dumps(obj, **kwargs)
        stream.write(text[: len(text) // 2])
        stream.flush()
        announce_and_stall()
    json.dump = half_dump
from vaembed import Embedder
from vaembed.models.loading import resolve_model_folder
time.sleep(max(0.0, start - time.time()))
embedder = Embedder.from_pretrained(spec, recipe, postprocess=postprocess)
print(json.dumps({
    "location": resolve_model_folder(spec).location,
    "layers": embedder.layers,
    "vector": embedder.encode("The quick brown fox").tolist(),
}))
"""


def _spawn(cache: Path, spec: str, *args: str, start: float = 0.0, marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "VAEMBED_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("VAEMBED_TEST_CACHE", None)
    if marker is not None:
        env["STALL_MARKER"] = str(marker)
    command = [sys.executable, "-c", CHILD, spec, str(start), *(args or ("wva", "none"))]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[dict, str]:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def _kill_at_marker(process: subprocess.Popen, marker: Path) -> None:
    deadline = time.time() + 240
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "the child never reached its kill point"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> Path:
    return save_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("folder") / "tiny", "llama")


def test_two_processes_starting_together_convert_a_gguf_once(tmp_path, gguf_file):
    cache = tmp_path / "cache"
    start = time.time() + 8  # both children have imported everything by then
    first, second = (_spawn(cache, str(gguf_file), start=start) for _ in range(2))
    (one, err_one), (two, err_two) = _finish(first), _finish(second)
    conversions = (err_one + err_two).count(f"Converting {gguf_file}")
    assert conversions == 1, err_one + err_two
    assert one["location"] == two["location"]
    assert np.array_equal(one["vector"], two["vector"]) and np.isfinite(one["vector"]).all()
    models = cache / "models"
    assert _visible(models) == [Path(one["location"]).name]
    assert not [p for p in models.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


def test_a_conversion_killed_half_way_leaves_nothing_used_and_is_redone(tmp_path, gguf_file):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    _kill_at_marker(_spawn(cache, str(gguf_file), "wva", "none", "save_pretrained", marker=marker), marker)
    models = cache / "models"
    assert _visible(models) == []  # only the hidden staging folder, never a half-written model folder
    assert [p for p in models.iterdir() if p.is_dir()]
    again, err = _finish(_spawn(cache, str(gguf_file)))
    assert err.count(f"Converting {gguf_file}") == 1
    assert [p.name for p in models.iterdir() if p.is_dir()] == [Path(again["location"]).name]
    clean, _ = _finish(_spawn(tmp_path / "clean-cache", str(gguf_file)))
    assert np.array_equal(again["vector"], clean["vector"])


@pytest.mark.parametrize(
    ("recipe", "postprocess", "written"), [("wva", "center", "statistics"), ("kv", "none", "profile")]
)
def test_statistics_and_profiles_are_computed_once_and_survive_a_kill(
    tmp_path, model_folder, recipe, postprocess, written
):
    cache, marker = tmp_path / "cache", tmp_path / "marker"
    _kill_at_marker(_spawn(cache, str(model_folder), recipe, postprocess, "json", marker=marker), marker)
    files = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert files and all(p.name.startswith(".") and p.name.endswith(".tmp") for p in files)  # only the half file
    start = time.time() + 8
    first, second = (_spawn(cache, str(model_folder), recipe, postprocess, start=start) for _ in range(2))
    (one, err_one), (two, err_two) = _finish(first), _finish(second)
    action = "Computing embedding statistics" if written == "statistics" else "Calibrating layers"
    assert (err_one + err_two).count(action) == 1, err_one + err_two
    assert one["layers"] == two["layers"] and np.array_equal(one["vector"], two["vector"])
    left = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert len(left) == 1 and not left[0].name.startswith(".")  # the half file is gone, the whole one stays
    json.loads(left[0].read_text(encoding="utf-8"))
    clean, _ = _finish(_spawn(tmp_path / "clean-cache", str(model_folder), recipe, postprocess))
    assert clean["layers"] == one["layers"] and np.allclose(clean["vector"], one["vector"], atol=1e-6)
