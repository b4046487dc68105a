"""Orchestration of the speed benchmark: inputs, worker processes, interleaved rounds (see `benchmarks.speed`)."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from vaembed.recipes.presets import CALIBRATED_PRESETS, get_recipe

REPO = Path(__file__).resolve().parents[1]
LATENCY_PRESETS = ("va", "aligned-wva", "kv", "hs-mean")
FALLBACK_LAYERS = {"va": "fallback", "wva": "fallback", "aligned-wva": "fallback", "kv": "kv-fallback"}
SYSTEMS = ("engine", "bare", "st")
Result = dict[str, Any]


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[speed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Worker:
    """A `benchmarks.speed_worker` subprocess spoken to in JSON lines."""

    def __init__(self, role: str, config: Result, env: dict[str, str], label: str) -> None:
        self.label = label
        self.finishing = False
        command = [sys.executable, "-m", "benchmarks.speed_worker", role, json.dumps(config)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
        )

    def send(self, command: str, **args: Any) -> None:
        """Send one command."""
        assert self.process.stdin is not None
        self.finishing = command == "finish"
        self.process.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self.process.stdin.flush()

    def receive(self, command: str) -> Result:
        """Read one reply; raise with the worker's label on failure."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: worker exited ({self.process.wait()}) during {command!r}; see stderr")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.label}: {command!r} failed in the worker:\n{reply['error']}")
        return reply

    def call(self, command: str, **args: Any) -> Result:
        """Send a command and return its reply."""
        self.send(command, **args)
        return self.receive(command)

    def finish(self) -> Result:
        """Ask for the final memory figures (unless already asked) and let the process end."""
        if not self.finishing:
            self.send("finish")
        reply = self.receive("finish")
        self.process.wait(timeout=120)
        return reply

    def kill(self) -> None:
        """End the process if it is still running (on errors)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """Deterministic texts of 4 to 80 pseudo-words (for offline smoke runs)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "su", "da", "fi"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(300)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 80))) + "." for _ in range(count)]


def corpus(kind: str, count: int) -> list[str]:
    """The throughput corpus: `count` documentation paragraphs, or synthetic texts."""
    if kind == "synthetic":
        return synthetic_texts(count)
    from benchmarks.python_docs import python_doc_passages

    texts = python_doc_passages(count)[1]
    if len(texts) < count:
        raise ValueError(f"--texts {count}: the documentation has only {len(texts)} passages")
    return texts


def long_source(kind: str) -> str:
    """Text to cut long documents from: the library pages concatenated, or synthetic texts."""
    if kind == "synthetic":
        return " ".join(synthetic_texts(400, seed=1))
    from benchmarks.python_docs import python_library_pages

    return "\n\n".join(python_library_pages().documents)


def exact_token_text(tokenizer: Any, source: str, length: int) -> tuple[str, int]:
    """A prefix of `source` that tokenizes (no special tokens) to exactly `length` tokens, and its count.

    Raises:
        ValueError: `source` is too short.
    """

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ids = tokenizer(source[: 16 * length + 1000], add_special_tokens=False)["input_ids"]
    if len(ids) < length + 16:
        raise ValueError(f"The source text has only {len(ids)} tokens, fewer than {length}")
    cut, best = length, None
    for _ in range(32):  # decoding and re-encoding can merge tokens at the cut: adjust it
        text = tokenizer.decode(ids[:cut])
        found = count(text)
        if best is None or abs(found - length) < abs(best[1] - length):
            best = (text, found)
        if found == length:
            break
        cut = max(1, cut + (length - found if abs(length - found) > 1 else (1 if found < length else -1)))
    assert best is not None
    return best


def documents(folder: str, kind: str, lengths: list[int]) -> list[Result]:
    """One document per length, of exactly that many text tokens for the model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    source = long_source(kind)
    out = []
    for length in lengths:
        text, found = exact_token_text(tokenizer, source, length)
        out.append({"length": length, "text_tokens": found, "text": text})
    return out


def layer_option(preset: str, mode: str) -> str | None:
    """The `layers=` argument for a preset: None (its default), `"auto"` (calibrated) or its fallback set."""
    if mode == "fallback":
        return FALLBACK_LAYERS.get(preset)
    if mode == "auto" and preset in CALIBRATED_PRESETS:
        return "auto"
    return None


def needs_profile(preset: str, mode: str) -> bool:
    """Whether a preset, with the `--layers` mode, reads the calibration profile."""
    option, recipe = layer_option(preset, mode), get_recipe(preset)
    return (recipe.with_layers(option) if option is not None else recipe).needs_calibration


def one_shot(role: str, config: Result, env: dict[str, str], label: str) -> Result:
    """Run a one-shot worker (`load`, `calibrate`) in a fresh process; its reply with the process's memory."""
    worker = Worker(role, config, env, label)
    try:
        reply = worker.call("start")
        reply["memory"] = worker.finish()["memory"]
        return reply
    finally:
        worker.kill()


def measure_load(spec: str, common: Result, env: dict[str, str]) -> Result:
    """First load (GGUF conversion in a fresh cache) and cached load of `Embedder.from_pretrained`."""
    from vaembed.models.registry import PRESETS

    config = {**common, "model": spec}
    if spec not in PRESETS and not spec.endswith(".gguf"):
        cached = one_shot("load", config, env, f"{spec}/load")
        return {"first": None, "note": "not a GGUF preset: nothing to convert", "cached": cached}
    with tempfile.TemporaryDirectory(prefix="vaembed-speed-cache-") as fresh:
        fresh_env = {**env, "VAEMBED_CACHE": fresh}
        log(f"{spec}: first load (GGUF conversion) in a fresh cache")
        first = one_shot("load", config, fresh_env, f"{spec}/first-load")
        cached = one_shot("load", config, fresh_env, f"{spec}/cached-load")
    return {"first": first, "cached": cached}


MEDIAN_KEYS = (
    "engine_texts_per_s",
    "bare_texts_per_s",
    "st_texts_per_s",
    "engine_tokens_per_s",
    "bare_tokens_per_s",
    "st_tokens_per_s",
    "vs_bare",
    "vs_st",
)


def round_figures(order: list[str], replies: dict[str, Result], texts: int, tokens: int) -> Result:
    """Throughputs and ratios of one round (ratios are engine texts/s over the other's)."""
    seconds = {name: replies[name]["seconds"] for name in SYSTEMS}
    st_tokens = sum(b["tokens"] for b in replies["st"]["batches"])
    return {
        "order": order,
        **{f"{name}_s": seconds[name] for name in SYSTEMS},
        **{f"{name}_texts_per_s": texts / seconds[name] for name in SYSTEMS},
        "engine_tokens_per_s": tokens / seconds["engine"],
        "bare_tokens_per_s": tokens / seconds["bare"],
        "st_tokens_per_s": st_tokens / seconds["st"],
        "st_tokens": st_tokens,
        "vs_bare": seconds["bare"] / seconds["engine"],
        "vs_st": seconds["st"] / seconds["engine"],
        "same_batches": replies["engine"]["batches"] == replies["bare"]["batches"],
    }


def bench_preset(preset: str, spec: str, args: argparse.Namespace, common: Result, peers: dict[str, Worker]) -> Result:
    """Interleaved throughput rounds of one preset in its own engine process, then its latency."""
    config = {**common, "model": spec, "preset": preset, "layers": layer_option(preset, args.layers)}
    engine = Worker("engine", config, args.env, f"{spec}/{preset}")
    try:
        ready = engine.call("start")
        lengths, plan = ready.pop("lengths"), ready.pop("plan")
        bare_lengths = peers["bare"].call("prepare", preset=preset, plan=plan, token_budget=ready["token_budget"])
        if bare_lengths["lengths"] != lengths:
            raise RuntimeError(f"{spec}/{preset}: the bare forward tokenized the corpus differently from the engine")
        engine.call("warmup")
        peers["bare"].call("warmup")
        systems = {"engine": engine, **peers}
        texts, tokens = common["texts_count"], sum(lengths)
        rounds: list[Result] = []
        batches: dict[str, list] = {}
        for number in range(args.rounds):
            order = list(SYSTEMS[number % 3 :] + SYSTEMS[: number % 3])
            replies = {name: systems[name].call("round") for name in order}
            rounds.append(round_figures(order, replies, texts, tokens))
            batches = batches or {name: replies[name]["batches"] for name in ("engine", "bare")}
            seconds = ", ".join(f"{name} {replies[name]['seconds']:.2f} s" for name in SYSTEMS)
            log(f"{spec}/{preset} round {number + 1}/{args.rounds}: {seconds}")
        memory = {name: replies[name]["memory"] for name in SYSTEMS}
        latency = None
        if preset in args.latency_presets:
            log(f"{spec}/{preset}: time per document at {args.lengths} tokens")
            latency = engine.call("latency")
        final = engine.finish()["memory"]
    finally:
        engine.kill()
    after_load = ready.pop("memory")
    after_load.pop("cuda_peak_mib")
    return {
        **ready,
        "layers_mode": args.layers,
        "early_exit": ready["stop_after"] is not None,
        "texts": texts,
        "tokens": tokens,
        "padded_tokens": sum(len(b) * max(lengths[i] for i in b) for b in plan),
        "batches": len(plan),
        "sequence_lengths": lengths,
        "rounds": rounds,
        "median": {key: statistics.median(r[key] for r in rounds) for key in MEDIAN_KEYS},
        "same_batches": all(r["same_batches"] for r in rounds),
        "engine_batches": batches["engine"],
        "bare_batches": batches["bare"],
        "memory": {
            "after_load": after_load,
            "throughput": memory["engine"],
            "final": final,
            "bare": memory["bare"],
            "st": memory["st"],
        },
        "latency": latency["latency"] if latency else None,
    }


def calibration(spec: str, presets: list[str], args: argparse.Namespace, common: Result) -> Result:
    """Make sure the calibrated presets' profile exists before any timing (timed when computed now)."""
    calibrated = [p for p in presets if needs_profile(p, args.layers)]
    if not calibrated:
        return {"skipped": f"no preset calibrates with layers={args.layers}"}
    log(f"{spec}: calibration profile for {calibrated} (computed once when missing)")
    options = {preset: layer_option(preset, args.layers) for preset in calibrated}
    return one_shot("calibrate", {**common, "model": spec, "presets": options}, args.env, f"{spec}/calibrate")


def bench_model(spec: str, args: argparse.Namespace, save: Callable[[Result], None]) -> Result:
    """Every measurement for one model; `save(result)` is called after each preset."""
    from transformers import AutoConfig

    from vaembed.models.loading import resolve_model_folder

    source = resolve_model_folder(spec)
    if not source.is_local:
        raise ValueError(f"{spec}: the speed benchmark needs a local model (a preset, a .gguf file or a folder)")
    model_config = AutoConfig.from_pretrained(source.location)
    context = int(getattr(model_config, "max_position_embeddings", 0) or 8192)
    common = {
        "device": args.device,
        "dtype": args.dtype,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_length": min(args.max_length, context),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "folder": source.location,
    }
    result: Result = {
        "folder": source.location,
        "num_layers": int(model_config.num_hidden_layers),
        "context": context,
        "max_length": common["max_length"],
        "load": None if args.skip_load else measure_load(spec, common, args.env),
        "presets": {},
    }
    result["calibration"] = calibration(spec, args.presets, args, common)
    save(result)
    with tempfile.TemporaryDirectory(prefix="vaembed-speed-") as scratch, ExitStack() as cleanup:
        texts = corpus(args.corpus, args.texts)
        inputs = {"texts": texts, "documents": documents(source.location, args.corpus, args.lengths)}
        common["inputs"] = str(Path(scratch) / "inputs.json")
        common["texts_count"] = len(texts)
        Path(common["inputs"]).write_text(json.dumps(inputs), encoding="utf-8")
        result["documents"] = [{k: v for k, v in d.items() if k != "text"} for d in inputs["documents"]]
        peers = {name: Worker(name, common, args.env, f"{spec}/{name}") for name in ("bare", "st")}
        for worker in peers.values():
            cleanup.callback(worker.kill)
            worker.send("start")  # both load at once; nothing is timed yet
        loaded = {name: worker.receive("start") for name, worker in peers.items()}
        peers["st"].call("warmup")
        for preset in args.presets:
            log(f"{spec}/{preset}: start")
            result["presets"][preset] = bench_preset(preset, spec, args, common, peers)
            save(result)
        bare_latency = None
        if args.latency_presets:
            log(f"{spec}: bare forward per document at {args.lengths} tokens")
            bare_latency = peers["bare"].call("latency")["latency"]
        for worker in peers.values():
            worker.send("finish")
        final = {name: worker.finish() for name, worker in peers.items()}
        result["bare"] = {**loaded["bare"], "latency": bare_latency, "memory": final["bare"]["memory"]}
        result["sentence_transformers"] = {**loaded["st"], "memory": final["st"]["memory"]}
    save(result)
    return result


def worker_env(threads: int) -> dict[str, str]:
    """The workers' environment: the same thread count everywhere, this repository importable."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    count = str(threads)
    return {**os.environ, "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count, "PYTHONPATH": path}
