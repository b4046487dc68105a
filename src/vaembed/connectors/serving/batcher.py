"""Dynamic batching: requests that arrive together share forward passes.

Each request is tokenized on its own (so a bad one fails alone), then queued
as a job. One worker takes the first waiting job, gathers whatever else
arrives within a short window (up to a maximum number of texts), and embeds
all their sequences in one engine call, on a worker thread so the event loop
keeps accepting requests. While a batch runs, new jobs pile up and form the
next one, so under load batches fill without waiting.

If a merged batch fails, its jobs are retried one by one, so the error
reaches only the request that caused it. An unexpected error in the worker
itself (a bug, not the engine) fails that batch's jobs with the error and the
worker goes on. Should the worker task still end (cancelled from outside, or
a `BaseException`), every waiting job fails with `BatcherUnavailable`, new
jobs are refused with it, and `failure` says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from vaembed.engine.tokenization import TokenSequence

__all__ = ["BatchStats", "BatcherUnavailable", "DynamicBatcher", "EmbedFunction"]

_LOG = logging.getLogger(__name__)

EmbedFunction = Callable[[list[TokenSequence], int], torch.Tensor]
"""Embeds sequences whose `source` indices are `0..count-1`; returns `(count, dimension)`."""


@dataclass
class BatchStats:
    """Counters of a batcher since it started.

    Attributes:
        requests: Jobs answered (with vectors or an error).
        texts: Texts embedded.
        batches: Engine calls made for merged batches.
        retries: Merged batches that failed and were retried job by job.
        largest_batch: Most requests merged into one engine call.
    """

    requests: int = 0
    texts: int = 0
    batches: int = 0
    retries: int = 0
    largest_batch: int = 0


class BatcherUnavailable(RuntimeError):
    """The batcher takes no jobs: it is not running, is shutting down, or its worker failed.

    A server answers it with 503: the request was fine, the service is not.
    """


@dataclass
class _Job:
    sequences: list[TokenSequence]
    count: int
    future: asyncio.Future[torch.Tensor] = field(repr=False)


class DynamicBatcher:
    """Merges concurrent embedding jobs into shared engine calls.

    Args:
        embed: The engine call (see `EmbedFunction`); it runs on a worker thread.
        max_batch_texts: Most texts in one merged call; a job larger than this
            runs on its own.
        max_wait_s: How long the first job of a batch waits for companions.
        on_batch: Called with (requests, texts) of each engine call made for a merged batch (metrics).
    """

    def __init__(
        self,
        embed: EmbedFunction,
        *,
        max_batch_texts: int = 128,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if isinstance(max_batch_texts, bool) or not isinstance(max_batch_texts, int) or max_batch_texts < 1:
            raise ValueError(f"max_batch_texts must be a positive int, not {max_batch_texts!r}")
        if not 0 <= max_wait_s <= 10:
            raise ValueError(f"max_wait_s must be in [0, 10] seconds, not {max_wait_s!r}")
        self._embed = embed
        self._on_batch = on_batch
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._held: _Job | None = None
        self._in_flight: list[_Job] = []
        self._stopping = False
        self._failure: str | None = None

    @property
    def running(self) -> bool:
        """Whether the worker is running."""
        return self._worker is not None and not self._worker.done()

    @property
    def failure(self) -> str | None:
        """Why the worker ended without `stop` (None while it runs or after a clean stop)."""
        return self._failure

    async def start(self) -> None:
        """Start the worker on the running event loop (again after a failure or a stop)."""
        if self.running:
            raise RuntimeError("the batcher is already running")
        self._stopping = False
        self._failure = None
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="vaembed-batcher")
        self._worker.add_done_callback(self._worker_ended)

    async def stop(self) -> None:
        """Stop the worker; waiting jobs fail with `BatcherUnavailable` ("the server is shutting down")."""
        self._stopping = True
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            await asyncio.wait({worker})  # neither raises the worker's end nor swallows our own cancellation
        self._fail_waiting("the server is shutting down")

    async def submit(self, sequences: list[TokenSequence], count: int) -> torch.Tensor:
        """Queue one request's sequences and wait for its `(count, dimension)` vectors.

        Raises:
            BatcherUnavailable: The batcher is not running, its worker failed, or
                it stopped before the job ran (a `RuntimeError`).
            Exception: Whatever the engine raised for this job's own texts.
        """
        if self._failure is not None:
            raise BatcherUnavailable(f"the batcher failed and takes no more jobs: {self._failure}")
        if not self.running or self._queue is None:
            raise BatcherUnavailable("the batcher is not running")
        future: asyncio.Future[torch.Tensor] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(sequences, count, future))
        return await future

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        """Done callback of the worker: unless `stop` ended it, record why and fail every waiting job."""
        error = None if worker.cancelled() else worker.exception()  # retrieved, so asyncio does not warn
        if self._stopping or worker is not self._worker:
            return
        if worker.cancelled():
            reason = "its worker task was cancelled"
        elif error is not None:
            detail = " ".join(str(error).split())
            reason = f"its worker task ended with {type(error).__name__}" + (f": {detail}" if detail else "")
        else:
            reason = "its worker task returned"
        self._failure = reason
        _LOG.error("vaembed batcher failed: %s; waiting and new requests are refused", reason)
        self._fail_waiting(f"the batcher failed: {reason}")

    def _fail_waiting(self, message: str) -> None:
        """Fail the jobs in flight, held and queued with `BatcherUnavailable(message)`."""
        waiting = [*self._in_flight, *([self._held] if self._held else [])]
        self._held = None
        self._in_flight = []
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(BatcherUnavailable(message))

    async def _next_batch(self) -> list[_Job]:
        """Gather the next batch into `_in_flight` (so `stop` can fail it at any await)."""
        assert self._queue is not None
        first = self._held or await self._queue.get()
        self._held = None
        jobs = self._in_flight = [first]
        texts = first.count
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while texts < self.max_batch_texts:
            if self._queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                    break
            else:
                job = self._queue.get_nowait()
            if texts + job.count > self.max_batch_texts:
                self._held = job  # starts the next batch
                break
            jobs.append(job)
            texts += job.count
        return jobs

    async def _work(self) -> None:
        while True:
            try:
                jobs = [job for job in await self._next_batch() if not job.future.done()]
                if jobs:
                    await self._run(jobs)
            except Exception as error:  # a bug outside the engine call: fail this batch, keep serving
                _LOG.exception("vaembed batcher: unexpected error; failing its batch of %d jobs", len(self._in_flight))
                for job in self._in_flight:
                    if not job.future.done():
                        self._finish(job, error=error)
            # not in a `finally`: on cancellation `stop` (or `_worker_ended`) fails the jobs in flight
            self._in_flight = []

    async def _run(self, jobs: list[_Job]) -> None:
        merged: list[TokenSequence] = []
        offsets: list[int] = []
        total = 0
        for job in jobs:
            offsets.append(total)
            merged.extend(replace(sequence, source=sequence.source + total) for sequence in job.sequences)
            total += job.count
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        if self._on_batch is not None:
            self._on_batch(len(jobs), total)
        try:
            vectors = await asyncio.to_thread(self._embed, merged, total)
        except Exception as error:  # retried job by job below
            if len(jobs) == 1:
                self._finish(jobs[0], error=error)
                return
            self.stats.retries += 1
            for job in jobs:
                try:
                    self._finish(job, await asyncio.to_thread(self._embed, job.sequences, job.count))
                except Exception as job_error:  # reported to that request alone
                    self._finish(job, error=job_error)
            return
        for job, offset in zip(jobs, offsets, strict=True):
            self._finish(job, vectors[offset : offset + job.count])

    def _finish(self, job: _Job, vectors: torch.Tensor | None = None, *, error: BaseException | None = None) -> None:
        self.stats.requests += 1
        if job.future.done():  # the client went away
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            assert vectors is not None
            self.stats.texts += job.count
            job.future.set_result(vectors)
