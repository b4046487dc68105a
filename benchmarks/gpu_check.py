r"""A GPU check that fits a short lease: real model shapes with random weights, no network, no model files.

    python -m benchmarks.gpu_check --out benchmarks/results/gpu-check.json        # on a CUDA machine, bf16
    python -m benchmarks.gpu_check --tiny --device cpu --out /tmp/gpu-check.json  # the same code on tiny shapes

For each shape (Llama-3-8B, Qwen2.5-1.5B, Gemma-3-1B, Mistral-7B; `--tiny`: four
small configs of the same families) a random-weight base model is built from
its config class on the device (SDPA attention for the bare forward), then:

- batch invariance: each input alone against the same inputs batched with
  padding on the right and on the left (cosine >= 0.999 in bf16);
- KV rerouting: bias -inf against the plain model, and the unpadded fast path
  against the padded (masked) path at bias 1 (cosine >= 0.999);
- bf16 against fp32 on a few inputs, per preset (cosine >= 0.999);
- throughput of every single-pass preset against a bare forward (the same
  model switched to transformers' own SDPA attention, no vaembed pass) over the
  same batches of random token ids, at 512 and 4096 tokens per input
  (16,384 tokens per batch), interleaved repeats, and the peak memory of each.

Inputs are random token ids, so prompts do not matter here (throughput and
numerics, not quality). One JSON file holds every figure and check;
`render_markdown` makes the table. Targets: every preset >= 0.9x the bare
forward on the 8B shape; invariance and bias checks pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vaembed.engine.forward_pass import PassPlan
from vaembed.engine.runner import Runner
from vaembed.engine.tokenization import TokenSequence
from vaembed.recipes.presets import PRESET_RECIPES, get_recipe
from vaembed.testing import build_tokenizer

Result = dict[str, Any]
COSINE = 0.999
TARGET = 0.9

SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-3-8b": ("LlamaConfig", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0,
                   max_position_embeddings=8192)),
    "qwen2.5-1.5b": ("Qwen2Config", dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                     num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                     attention_bias=True)),
    "gemma-3-1b": ("Gemma3TextConfig", dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
                   sliding_window=512, query_pre_attn_scalar=256, max_position_embeddings=32768)),
    "mistral-7b": ("MistralConfig", dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, vocab_size=32768, sliding_window=None,
                   max_position_embeddings=32768)),
}  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, head_dim=16,
            vocab_size=512, max_position_embeddings=8192)  # fmt: skip


def shape_options(name: str, tiny: bool) -> tuple[str, dict[str, Any]]:
    """The config class and options of a shape; `tiny` shrinks it, keeping its GQA ratio and sliding window."""
    class_name, shape = SHAPES[name]
    if not tiny:
        return class_name, shape
    options = {**shape, **TINY, "num_key_value_heads": 1 if shape["num_key_value_heads"] == 1 else 2}
    if shape.get("sliding_window"):
        options["sliding_window"] = 64
    if "query_pre_attn_scalar" in shape:
        options["query_pre_attn_scalar"] = TINY["head_dim"]
    return class_name, options


def build(name: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A random-weight base model of one shape, built on the device."""
    import transformers

    class_name, options = shape_options(name, tiny)
    config = getattr(transformers, class_name)(**options, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModel.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def sequences(count: int, length: int, vocab: int, seed: int, placeholder: bool) -> list[TokenSequence]:
    """Random token ids (no special tokens), one sequence per input; equal lengths unless `length` is a list."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for index in range(count):
        n = length if isinstance(length, int) else length[index]
        ids = tuple(torch.randint(3, vocab, (n,), generator=generator).tolist())
        out.append(TokenSequence(ids, (True,) * n, 1 if placeholder else None, index, n))
    return out


def plan_for(runner: Runner, preset: str) -> PassPlan:
    """The preset at its default layers, a calibrated set replaced by its METHODS fallback window.

    Random weights are not calibrated: `kv` reroutes at `"kv-fallback"`, and the
    readouts that default to `"auto"` read `"fallback"`, which (like their
    calibrated windows on the real models) runs up to the last layer.
    """
    recipe = get_recipe(preset)
    if recipe.needs_calibration:
        recipe = recipe.with_layers("kv-fallback" if recipe.layers_option_target == "intervention" else "fallback")
    return PassPlan(recipe.resolve(runner.num_layers), runner.num_layers)


def embed(runner: Runner, plan: PassPlan, inputs: list[TokenSequence], batch_size: int) -> torch.Tensor:
    """Unit vectors of `inputs` under `plan`, through the engine's batch runner."""
    runner.model.config._attn_implementation = "vaembed"
    (readings,) = runner.read(inputs, [plan], batch_size=batch_size)
    return torch.nn.functional.normalize(readings.vectors.double(), dim=-1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The smallest row-wise cosine between two sets of unit vectors."""
    return float((a * b).sum(dim=-1).min())


def checks(runner: Runner, vocab: int) -> Result:
    """Batch invariance, KV rerouting with bias -inf and fast against masked path (cosines)."""
    out: Result = {}
    lengths = [37, 120, 64, 9]
    for preset in PRESET_RECIPES:
        plan = plan_for(runner, preset)
        inputs = sequences(4, lengths, vocab, 1, preset == "token-prepending")
        alone = torch.cat([embed(runner, plan, [s], 1) for s in inputs])
        row = {}
        for side in ("right", "left"):
            runner.text_tokenizer.padding_side = side
            row[f"padded_{side}"] = cosine(alone, embed(runner, plan, inputs, 4))
        runner.text_tokenizer.padding_side = "right"
        out[preset] = row
    kv = get_recipe("kv").with_layers("kv-fallback")
    plain = PassPlan(replace(kv, intervention=None).resolve(runner.num_layers), runner.num_layers)
    minus_inf = replace(kv, intervention=replace(kv.intervention, bias=float("-inf")))
    off = PassPlan(minus_inf.resolve(runner.num_layers), runner.num_layers)
    inputs = sequences(4, lengths, vocab, 2, False)
    out["kv_bias_minus_inf_vs_plain"] = cosine(embed(runner, off, inputs, 4), embed(runner, plain, inputs, 4))
    on = PassPlan(kv.resolve(runner.num_layers), runner.num_layers)
    fast = torch.cat([embed(runner, on, [s], 1) for s in inputs])
    out["kv_fast_vs_masked"] = cosine(fast, embed(runner, on, inputs, 4))
    return out


def precision(runner: Runner, vocab: int) -> Result:
    """bf16 against fp32 per preset on a few inputs (the same weights, cast up, then back)."""
    inputs = {p: sequences(4, [50, 90, 30, 70], vocab, 3, p == "token-prepending") for p in PRESET_RECIPES}
    low = {p: embed(runner, plan_for(runner, p), inputs[p], 4) for p in PRESET_RECIPES}
    dtype = next(runner.model.parameters()).dtype
    runner.model.float()
    high = {p: embed(runner, plan_for(runner, p), inputs[p], 4) for p in PRESET_RECIPES}
    runner.model.to(dtype)
    return {p: cosine(low[p], high[p]) for p in PRESET_RECIPES}


def synchronize(device: torch.device) -> None:
    """Wait for the device."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(model: torch.nn.Module, runner: Runner, inputs: list[TokenSequence], batch_size: int) -> None:
    """The plain model (transformers' SDPA attention) over the same padded batches the engine runs."""
    from vaembed.engine.batching import plan_batches

    model.config._attn_implementation = "sdpa"
    with torch.inference_mode():
        for chosen in plan_batches([len(s.ids) for s in inputs], batch_size, runner.batch_token_budget):
            batch = runner.text_tokenizer.collate([inputs[i] for i in chosen]).to(runner.device)
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                  use_cache=False)  # fmt: skip


def throughput(runner: Runner, vocab: int, lengths: list[int], tokens: int, repeats: int) -> Result:
    """Tokens/s of each preset and of the bare forward over the same batches, interleaved; peak memory."""
    device, out = runner.device, {}
    for length in lengths:
        count = max(1, tokens // length)
        row: Result = {}
        for preset in PRESET_RECIPES:
            inputs = sequences(count, length, vocab, 4, preset == "token-prepending")
            plan = plan_for(runner, preset)
            calls = {
                "engine": lambda plan=plan, inputs=inputs, count=count: embed(runner, plan, inputs, count),
                "bare": lambda inputs=inputs, count=count: bare(runner.model, runner, inputs, count),
            }
            for call in calls.values():
                call()
            seconds: dict[str, list[float]] = {"engine": [], "bare": []}
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for repeat in range(repeats):
                for name in ("engine", "bare") if repeat % 2 == 0 else ("bare", "engine"):
                    synchronize(device)
                    start = time.perf_counter()
                    calls[name]()
                    synchronize(device)
                    seconds[name].append(time.perf_counter() - start)
            engine_s, bare_s = statistics.median(seconds["engine"]), statistics.median(seconds["bare"])
            row[preset] = {
                "tokens": count * length,
                "engine_tokens_per_s": count * length / engine_s,
                "bare_tokens_per_s": count * length / bare_s,
                "vs_bare": bare_s / engine_s,
                "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            }
        out[str(length)] = row
    return out


def run(args: argparse.Namespace) -> Result:
    """Every shape: checks, precision and throughput."""
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    results: Result = {}
    for name in args.shapes:
        started = time.perf_counter()
        model = build(name, args.tiny, device, dtype)
        runner = Runner(model, build_tokenizer(False), max_length=max(args.lengths), name=name)
        runner.batch_token_budget = args.tokens
        vocab = int(model.config.vocab_size)
        entry: Result = {"parameters": sum(p.numel() for p in model.parameters()), "dtype": str(dtype)}
        entry["checks"] = checks(runner, vocab)
        entry["precision_vs_fp32"] = precision(runner, vocab) if dtype != torch.float32 else None
        entry["throughput"] = throughput(runner, vocab, args.lengths, args.tokens, args.repeats)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = entry
        print(f"{name}: {entry['seconds']} s", flush=True)
        del runner, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def render_markdown(record: Result) -> str:
    """Throughput ratios and checks per shape, as Markdown."""
    lines = [f"GPU check on {record['device_name']} ({record['created']}): `{' '.join(record['command'])}`", ""]
    for name, entry in record["shapes"].items():
        lengths = list(entry["throughput"])
        lines += [f"**{name}** ({entry['parameters'] / 1e9:.2f} B parameters, {entry['dtype']})", ""]
        lines += ["| preset | " + " | ".join(f"x bare @ {n} (tokens/s)" for n in lengths) + " | peak MiB |"]
        lines += ["|---" * (len(lengths) + 2) + "|"]
        for preset in PRESET_RECIPES:
            rows = [entry["throughput"][n][preset] for n in lengths]
            cells = [f"{row['vs_bare']:.2f} ({row['engine_tokens_per_s']:.0f})" for row in rows]
            peak = rows[-1]["peak_mib"]
            lines.append(f"| {preset} | " + " | ".join(cells) + f" | {'-' if peak is None else f'{peak:.0f}'} |")
        found = entry["checks"]
        invariance = min(min(row.values()) for row in found.values() if isinstance(row, dict))
        text = f"batch invariance {invariance:.5f}, bias -inf vs plain {found['kv_bias_minus_inf_vs_plain']:.5f}"
        text += f", fast vs masked path {found['kv_fast_vs_masked']:.5f}"
        if entry["precision_vs_fp32"]:
            text += f", bf16 vs fp32 {min(entry['precision_vs_fp32'].values()):.5f}"
        lines += ["", f"Checks (smallest cosine, >= {COSINE} to pass): {text}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Result:
    """Run the check and write its JSON (and print the table)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--tiny", action="store_true", help="small configs of the same families (CPU tests)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    record: Result = {
        "benchmark": "gpu_check",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)],
        "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
        "shapes": run(args),
    }
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    record["passed"] = all(_passed(entry) for entry in record["shapes"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(render_markdown(record))
    return record


def _passed(entry: Result) -> bool:
    cosines = [v for row in entry["checks"].values() for v in (row.values() if isinstance(row, dict) else [row])]
    cosines += list((entry["precision_vs_fp32"] or {}).values())
    return min(cosines) >= COSINE


if __name__ == "__main__":
    main()
