"""Worker processes of the speed benchmark (`benchmarks.speed`), one role each.

    python -m benchmarks.speed_worker ROLE CONFIG_JSON

Roles: `engine` (one vaembed preset through `Embedder.encode`), `bare` (a plain
`AutoModel` with sdpa attention, no vaembed hooks, run over the engine's own
token sequences and batches), `st` (sentence-transformers with mean pooling),
`load` (time `Embedder.from_pretrained`) and `calibrate` (make sure the
calibration profile exists, timing it when it does not). Each worker reads one
JSON command per line on stdin and answers one JSON line on its original
stdout; anything libraries print goes to stderr. Each timing includes the
tokenization of the texts (and, for the engine and the bare forward, the
padding of every batch), with CUDA synchronised before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Reply = dict[str, Any]


def memory(device: str) -> Reply:
    """This process's current and peak RSS (MiB) and, on CUDA, the peak allocated GPU memory since the last reset."""
    import psutil

    out: Reply = {
        "rss_mib": psutil.Process().memory_info().rss / 2**20,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mib": None,
    }
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def timed(device: str, work: Callable[[], object]) -> float:
    """Seconds `work` takes, CUDA synchronised before and after."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    work()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


class BatchRecorder:
    """Records the inputs of every call of a model, summarised only after the timing.

    It wraps the instance's `forward` rather than adding a hook, because
    sentence-transformers calls `model.forward` directly.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.inputs: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        original = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if isinstance(ids, torch.Tensor):
                self.inputs.append((ids, kwargs.get("attention_mask")))
            return original(*args, **kwargs)

        module.forward = forward

    def take(self) -> list[Reply]:
        """One summary per recorded call (rows, width, real tokens, digest of the ids and mask); then forget them."""
        out = []
        for ids, mask in self.inputs:
            mask = torch.ones_like(ids) if mask is None else mask
            digest = hashlib.sha256(ids.cpu().numpy().tobytes() + mask.cpu().long().numpy().tobytes()).hexdigest()
            out.append({"rows": ids.shape[0], "width": ids.shape[1], "tokens": int(mask.sum()), "digest": digest[:16]})
        self.inputs.clear()
        return out


def _latency(
    device: str, documents: list[Reply], repeats: int, run: Callable[[str], object], count: Callable[[str], int]
) -> Reply:
    """Seconds per document at each length (after one warm-up on the shortest); `count` gives its tokens, untimed."""
    _reset_cuda_peak(device)
    run(documents[0]["text"])
    out: Reply = {}
    for document in documents:
        seconds = [timed(device, lambda d=document: run(d["text"])) for _ in range(repeats)]
        out[str(document["length"])] = {
            "tokens": count(document["text"]),
            "seconds": seconds,
            "median_s": statistics.median(seconds),
        }
    return {"latency": out, "memory": memory(device)}


class Engine:
    """One preset through the public engine path (`Embedder.encode`)."""

    def __init__(self, config: Reply, inputs: Reply) -> None:
        from vaembed import Embedder

        self.config, self.texts, self.documents = config, inputs["texts"], inputs["documents"]
        self.device = config["device"]
        start = time.perf_counter()
        self.embedder = Embedder.from_pretrained(
            config["model"],
            config["preset"],
            config["layers"],
            max_length=config["max_length"],
            device=config["device"],
            dtype=config["dtype"],
        )
        self.build_seconds = time.perf_counter() - start
        self.recorder = BatchRecorder(self.embedder.model)

    def ready(self) -> Reply:
        """The layers used, the token sequences and the batch plan the engine will run."""
        from vaembed.engine.batching import plan_batches

        embedder, batch_size = self.embedder, self.config["batch_size"]
        start = time.perf_counter()
        sequences, shortened = embedder.tokenize(self.texts)
        tokenize_seconds = time.perf_counter() - start
        lengths = [len(s.ids) for s in sequences]
        resolved = embedder.plan.recipe
        return {
            "build_seconds": self.build_seconds,
            "num_layers": embedder.num_layers,
            "dimension": embedder.dimension,
            "layers": embedder.layers,
            "readout_layers": list(resolved.layers),
            "intervention_layers": list(resolved.intervention.layers) if resolved.intervention else [],
            "stop_after": embedder.plan.stop_after,
            "token_budget": embedder.batch_token_budget,
            "tokenize_seconds": tokenize_seconds,
            "lengths": lengths,
            "truncated": shortened,
            "plan": plan_batches(lengths, batch_size, embedder.batch_token_budget),
            "memory": memory(self.device),
        }

    def warmup(self) -> Reply:
        """Embed the first `warmup` texts once."""
        texts, batch_size = self.texts[: self.config["warmup"]], self.config["batch_size"]
        self.embedder.encode(texts, batch_size=batch_size, show_progress_bar=False)
        self.recorder.take()
        _reset_cuda_peak(self.device)
        return {}

    def round(self) -> Reply:
        """One timed `encode` of the whole corpus, and the batches the model saw."""
        batch_size = self.config["batch_size"]
        seconds = timed(
            self.device, lambda: self.embedder.encode(self.texts, batch_size=batch_size, show_progress_bar=False)
        )
        return {"seconds": seconds, "batches": self.recorder.take(), "memory": memory(self.device)}

    def latency(self) -> Reply:
        """Time per document (batch of 1) with a max_length of the model's default (its context, at most 8192)."""
        from vaembed import Embedder

        config = self.config
        long = Embedder.from_pretrained(
            config["model"], config["preset"], config["layers"], device=config["device"], dtype=config["dtype"]
        )

        def run(text: str) -> object:
            return long.encode([text], batch_size=1, show_progress_bar=False)

        def count(text: str) -> int:
            return len(long.tokenize([text])[0][0].ids)

        out = _latency(self.device, self.documents, config["repeats"], run, count)
        self.recorder.take()
        return out


class Bare:
    """A plain transformers model (sdpa attention, no vaembed hooks) over the engine's sequences and batches."""

    def __init__(self, config: Reply, inputs: Reply) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.config, self.texts, self.documents = config, inputs["texts"], inputs["documents"]
        self.device = config["device"]
        dtype = getattr(torch, config["dtype"])
        start = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(config["folder"])
        self.model = AutoModel.from_pretrained(config["folder"], dtype=dtype, attn_implementation="sdpa")
        self.model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - start
        self.recorder = BatchRecorder(self.model)
        self.prompt: Any = None
        self.plan: list[list[int]] = []

    def ready(self) -> Reply:
        """What was loaded."""
        attention = self.model.config._attn_implementation
        return {"load_seconds": self.load_seconds, "attention": attention, "memory": memory(self.device)}

    def prepare(self, preset: str, plan: list[list[int]], token_budget: int) -> Reply:
        """Take a preset's prompt and the engine's batch plan; return the sequence lengths (to check against it)."""
        from vaembed.recipes.presets import get_recipe

        self.prompt, self.plan, self.token_budget = get_recipe(preset).prompt, plan, token_budget
        return {"lengths": [len(s.ids) for s in self._tokenize(self.texts, self.config["max_length"])]}

    def _tokenize(self, texts: list[str], max_length: int) -> list[Any]:
        from vaembed.engine.tokenization import TextTokenizer

        return TextTokenizer(self.tokenizer, max_length).encode(texts, self.prompt, "document", "truncate")[0]

    def _run(self, texts: list[str], plan: list[list[int]], max_length: int) -> int:
        from vaembed.engine.tokenization import TextTokenizer

        text_tokenizer = TextTokenizer(self.tokenizer, max_length)
        sequences = text_tokenizer.encode(texts, self.prompt, "document", "truncate")[0]
        with torch.inference_mode():
            for chosen in plan:
                batch = text_tokenizer.collate([sequences[i] for i in chosen]).to(self.model.device)
                self.model(
                    input_ids=batch.input_ids,
                    attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids,
                    use_cache=False,
                )
        return sum(len(s.ids) for s in sequences)

    def warmup(self) -> Reply:
        """Run the first `warmup` texts once, batched as the engine batches them."""
        from vaembed.engine.batching import plan_batches

        texts, max_length = self.texts[: self.config["warmup"]], self.config["max_length"]
        lengths = [len(s.ids) for s in self._tokenize(texts, max_length)]
        self._run(texts, plan_batches(lengths, self.config["batch_size"], self.token_budget), max_length)
        self.recorder.take()
        _reset_cuda_peak(self.device)
        return {}

    def round(self) -> Reply:
        """One timed pass over the corpus: tokenize, then pad and run every batch of the engine's plan."""
        seconds = timed(self.device, lambda: self._run(self.texts, self.plan, self.config["max_length"]))
        return {"seconds": seconds, "batches": self.recorder.take(), "memory": memory(self.device)}

    def latency(self) -> Reply:
        """Time per document (batch of 1), plain text as `hs-mean` tokenizes it, no truncation below the context."""
        from vaembed.recipes.presets import get_recipe

        self.prompt = get_recipe("hs-mean").prompt
        context = int(getattr(self.model.config, "max_position_embeddings", 8192) or 8192)
        limit = min(context, 8192)

        def count(text: str) -> int:
            return len(self._tokenize([text], limit)[0].ids)

        out = _latency(
            self.device, self.documents, self.config["repeats"], lambda t: self._run([t], [[0]], limit), count
        )
        self.recorder.take()
        return out


class SentenceTransformers:
    """sentence-transformers over the same converted folder: `Transformer` then mean `Pooling`."""

    def __init__(self, config: Reply, inputs: Reply) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Pooling, Transformer

        self.config, self.texts = config, inputs["texts"]
        self.device = config["device"]
        start = time.perf_counter()
        model_kwargs = {"dtype": getattr(torch, config["dtype"]), "attn_implementation": "sdpa"}
        transformer = Transformer(config["folder"], max_seq_length=config["max_length"], model_kwargs=model_kwargs)
        if transformer.tokenizer.pad_token is None:
            transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
        dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
        pooling = Pooling(dimension(), "mean")
        self.model = SentenceTransformer(modules=[transformer, pooling], device=self.device)
        self.load_seconds = time.perf_counter() - start
        from transformers import PreTrainedModel

        base = next(m for m in self.model.modules() if isinstance(m, PreTrainedModel))
        self.recorder = BatchRecorder(base)
        self.attention = base.config._attn_implementation

    def ready(self) -> Reply:
        """What was loaded."""
        return {"load_seconds": self.load_seconds, "attention": self.attention, "memory": memory(self.device)}

    def _encode(self, texts: list[str]) -> None:
        self.model.encode(texts, batch_size=self.config["batch_size"], show_progress_bar=False)

    def warmup(self) -> Reply:
        """Embed the first `warmup` texts once."""
        self._encode(self.texts[: self.config["warmup"]])
        self.recorder.take()
        _reset_cuda_peak(self.device)
        return {}

    def round(self) -> Reply:
        """One timed `encode` of the corpus, and the batches its model saw."""
        seconds = timed(self.device, lambda: self._encode(self.texts))
        return {"seconds": seconds, "batches": self.recorder.take(), "memory": memory(self.device)}


def load_once(config: Reply) -> Reply:
    """Time this fresh process's start-up and imports, then `Embedder.from_pretrained(model, "hs-mean")`."""
    import psutil

    started = psutil.Process().create_time()
    from vaembed import Embedder
    from vaembed.cache import cache_dir

    imported = time.time()
    converted = (cache_dir() / "models" / str(config["model"]) / "config.json").is_file()
    Embedder.from_pretrained(config["model"], "hs-mean", device=config["device"], dtype=config["dtype"])
    return {
        "startup_seconds": imported - started,
        "load_seconds": time.time() - imported,
        "was_converted": converted,
    }


def calibrate_once(config: Reply) -> Reply:
    """Obtain the calibration profile the calibrated presets need (computing it if missing), timed."""
    from vaembed import Embedder
    from vaembed.calibration.profile import default_profile_path
    from vaembed.calibration.run import model_identity

    embedder = Embedder.from_pretrained(config["model"], "hs-mean", device=config["device"], dtype=config["dtype"])
    path = default_profile_path(model_identity(embedder.runner))
    existed = path.exists()
    start = time.perf_counter()
    chosen = {preset: embedder.with_recipe(preset, layers).layers for preset, layers in config["presets"].items()}
    return {"profile": str(path), "existed": existed, "seconds": time.perf_counter() - start, "layers": chosen}


ROLES: dict[str, type] = {"engine": Engine, "bare": Bare, "st": SentenceTransformers}
ONE_SHOT: dict[str, Callable[[Reply], Reply]] = {"load": load_once, "calibrate": calibrate_once}


def serve(role: str, config: Reply) -> None:
    """Answer commands on stdin until `finish` or end of input (the protocol in the module docstring)."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints and C-level output go to stderr
    torch.set_num_threads(int(config["threads"]))
    worker: Any = None
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("command")
        try:
            if name == "finish":
                reply = {"memory": memory(config["device"])}
            elif name == "start":
                if role in ONE_SHOT:
                    reply = ONE_SHOT[role](config)
                else:
                    inputs = json.loads(Path(config["inputs"]).read_text(encoding="utf-8"))
                    worker = ROLES[role](config, inputs)
                    reply = worker.ready()
            else:
                reply = getattr(worker, name)(**command)
        except Exception:  # the orchestrator raises it with the role and preset named
            reply = {"error": traceback.format_exc()}
        channel.write(json.dumps(reply) + "\n")
        if name == "finish":
            break


def main(argv: list[str] | None = None) -> None:
    """Entry point: `ROLE CONFIG_JSON`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in {*ROLES, *ONE_SHOT}:
        raise SystemExit(f"usage: python -m benchmarks.speed_worker {{{','.join([*ROLES, *ONE_SHOT])}}} CONFIG_JSON")
    serve(args[0], json.loads(args[1]))


if __name__ == "__main__":
    main()
