"""One loaded model per process, and thread-safe sharing of an embedder."""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vaembed import Embedder
from vaembed.engine.locks import lock_for
from vaembed.models.shared import loaded_count

TEXTS = [f"text number {i}: " + "the fox jumps " * (i % 7 + 1) for i in range(48)]


def test_same_model_and_options_share_one_copy(tiny_model_folder):
    first = Embedder.from_pretrained(tiny_model_folder, "hs-mean", device="cpu")
    second = Embedder.from_pretrained(str(tiny_model_folder), "kv", layers=[1], device="cpu")
    assert second.model is first.model
    assert second.tokenizer is first.tokenizer
    private = Embedder.from_pretrained(tiny_model_folder, "hs-mean", device="cpu", share=False)
    assert private.model is not first.model
    other_dtype = Embedder.from_pretrained(tiny_model_folder, "hs-mean", device="cpu", dtype="bfloat16")
    assert other_dtype.model is not first.model
    assert np.array_equal(private.encode(TEXTS[:4]), first.encode(TEXTS[:4]))


def test_the_shared_copy_is_freed_with_its_last_embedder(tiny_model_folder):
    gc.collect()
    before = loaded_count()
    embedder = Embedder.from_pretrained(tiny_model_folder, "hs-mean", device="cpu", model_kwargs={"use_cache": False})
    assert loaded_count() == before + 1
    alive = weakref.ref(embedder.model)
    del embedder
    gc.collect()
    assert alive() is None
    assert loaded_count() == before


def test_lock_for_is_one_lock_per_object(tiny_llama):
    model, tokenizer = tiny_llama
    assert lock_for(model) is lock_for(model)
    assert lock_for(model) is not lock_for(tokenizer)


def test_threads_sharing_an_embedder_get_exactly_the_sequential_results(tiny_llama):
    model, tokenizer = tiny_llama
    embedder = Embedder(model, tokenizer, "kv", layers=[1, 2], long_text="chunk", max_length=24)
    sequential = [embedder.encode_query(t) if i % 2 else embedder.encode(t) for i, t in enumerate(TEXTS)]
    barrier = threading.Barrier(8)

    def work(index: int) -> np.ndarray:
        if index < 8:
            barrier.wait()
        return embedder.encode(TEXTS[index], role="query" if index % 2 else "document")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(len(TEXTS))))
    for got, want in zip(results, sequential, strict=True):
        assert np.array_equal(got, want)


def test_forward_passes_on_one_model_never_overlap(tiny_llama):
    model, tokenizer = tiny_llama
    first = Embedder(model, tokenizer, "hs-mean")
    second = first.with_recipe("kv", [1])  # another embedder on the same model
    active, peak, guard = [0], [0], threading.Lock()

    def enter(module, args):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.002)  # widen the window an overlap would need

    def leave(module, args, output):
        with guard:
            active[0] -= 1

    handles = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [pool.submit((first if i % 2 else second).encode, TEXTS[i], batch_size=1) for i in range(24)]
            for job in jobs:
                job.result()
    finally:
        for handle in handles:
            handle.remove()
    assert peak[0] == 1
