"""DynamicBatcher: merging concurrent jobs, isolating failures, shutting down."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from vaembed.connectors.serving.batcher import BatcherUnavailable, DynamicBatcher
from vaembed.engine.batching import combine_chunks
from vaembed.engine.tokenization import TokenSequence

POISON = 666


def sequences(*ids_per_text: tuple[int, ...]) -> list[TokenSequence]:
    return [TokenSequence(ids, (True,) * len(ids), None, source, len(ids)) for source, ids in enumerate(ids_per_text)]


class RecordingEmbed:
    """Row i = (sum of text i's ids, its length); raises if any sequence holds POISON."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, seqs: list[TokenSequence], count: int) -> torch.Tensor:
        with self.lock:
            self.calls.append(count)
        if any(POISON in s.ids for s in seqs):
            raise FloatingPointError("poisoned input")
        threading.Event().wait(self.delay)
        out = torch.zeros((count, 2))
        for s in seqs:
            out[s.source] += torch.tensor([float(sum(s.ids)), float(len(s.ids))])
        return out


def expected(*ids_per_text: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor([[float(sum(ids)), float(len(ids))] for ids in ids_per_text])


async def test_concurrent_jobs_share_calls_and_get_their_own_rows():
    embed = RecordingEmbed(delay=0.05)
    batcher = DynamicBatcher(embed, max_batch_texts=64, max_wait_s=0.02)
    await batcher.start()
    jobs = [((i, i + 1), (i * 10,)) for i in range(1, 21)]
    results = await asyncio.gather(*(batcher.submit(sequences(*job), len(job)) for job in jobs))
    await batcher.stop()
    for job, result in zip(jobs, results, strict=True):
        assert torch.equal(result, expected(*job))
    assert len(embed.calls) < len(jobs)
    assert batcher.stats.largest_batch > 1
    assert batcher.stats.requests == 20 and batcher.stats.texts == 40


async def test_a_batch_never_exceeds_max_texts_and_large_jobs_run_alone():
    embed = RecordingEmbed(delay=0.02)
    batcher = DynamicBatcher(embed, max_batch_texts=5, max_wait_s=0.05)
    await batcher.start()
    small = [batcher.submit(sequences((i,), (i,)), 2) for i in range(1, 7)]
    large = batcher.submit(sequences(*[(j,) for j in range(1, 9)]), 8)
    results = await asyncio.gather(*small, large)
    await batcher.stop()
    assert torch.equal(results[-1], expected(*[(j,) for j in range(1, 9)]))
    assert all(count <= 5 for count in embed.calls if count != 8)
    assert 8 in embed.calls


async def test_a_failing_job_fails_alone_and_its_batch_mates_succeed():
    embed = RecordingEmbed(delay=0.05)
    batcher = DynamicBatcher(embed, max_batch_texts=64, max_wait_s=0.05)
    await batcher.start()
    good = [((1, 2),), ((3,),), ((4, 5, 6),)]
    tasks = [batcher.submit(sequences(*job), len(job)) for job in good]
    tasks.insert(1, batcher.submit(sequences((7,), (POISON,)), 2))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], FloatingPointError)
    for job, result in zip(good, [results[0], *results[2:]], strict=True):
        assert torch.equal(result, expected(*job))
    assert batcher.stats.retries == 1
    # the batcher keeps working afterwards
    assert torch.equal(await batcher.submit(sequences((9,)), 1), expected((9,)))
    await batcher.stop()


async def test_submit_needs_a_running_batcher_and_stop_fails_waiting_jobs():
    embed = RecordingEmbed(delay=0.3)
    batcher = DynamicBatcher(embed, max_batch_texts=1, max_wait_s=0)
    with pytest.raises(RuntimeError, match="not running"):
        await batcher.submit(sequences((1,)), 1)
    await batcher.start()
    first = asyncio.ensure_future(batcher.submit(sequences((1,)), 1))
    second = asyncio.ensure_future(batcher.submit(sequences((2,)), 1))
    await asyncio.sleep(0.05)
    await batcher.stop()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert any(isinstance(o, BatcherUnavailable) and "shutting down" in str(o) for o in outcomes)
    assert batcher.failure is None  # a clean stop is not a failure


async def test_a_dead_worker_fails_waiting_jobs_and_refuses_new_ones_until_restarted():
    embed = RecordingEmbed(delay=0.3)
    batcher = DynamicBatcher(embed, max_batch_texts=1, max_wait_s=0)
    await batcher.start()
    waiting = [asyncio.ensure_future(batcher.submit(sequences((i,)), 1)) for i in (1, 2)]
    await asyncio.sleep(0.05)
    batcher._worker.cancel()  # the worker ends without stop(): e.g. cancelled by a library
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, BatcherUnavailable) and "cancelled" in str(o) for o in outcomes)
    assert batcher.failure == "its worker task was cancelled" and not batcher.running
    with pytest.raises(BatcherUnavailable, match="failed and takes no more jobs"):
        await batcher.submit(sequences((3,)), 1)
    await batcher.start()
    assert batcher.failure is None
    assert torch.equal(await batcher.submit(sequences((4, 5)), 1), expected((4, 5)))
    await batcher.stop()


def test_combine_chunks_follows_each_sequences_source_not_its_position():
    seqs = [TokenSequence((1,), (True,), None, source, 1) for source in (1, 0)]
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    combined = combine_chunks(seqs, vectors, 2, normalize=False)
    assert torch.equal(combined, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


@pytest.mark.parametrize("kwargs", [{"max_batch_texts": 0}, {"max_batch_texts": True}, {"max_wait_s": -1}])
def test_bad_settings_are_named(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DynamicBatcher(RecordingEmbed(), **kwargs)
