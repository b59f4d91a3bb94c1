"""Dynamic batching: messages from many concurrent requests share one model call.

Requests put their messages in a bounded queue and await a future. One collector task takes
the queued messages (waiting at most `max_wait_ms` after the first, or until `max_batch` are
there) and runs them in a single worker thread, so the event loop never blocks on the model.
While the worker is busy new messages pile up and form the next batch, so the batch size
follows the load by itself. A request's messages may span several batches; its answer comes
when all of them are done, in request order. When the queue is full a request is refused at
once (`Overloaded`, answered 503 with Retry-After) instead of waiting without bound.
Within a batch the engine sorts the messages by length and runs groups of similar length, so
a long message does not pad a batch of short ones (`serving.engine.length_groups`).

Each job carries the engine it was admitted with, so a model reload never changes the model
under a request that is already queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("qunguard.batcher")


class Overloaded(Exception):
    """The queue is full; the caller should retry later."""


class BatcherStopped(Exception):
    """The batcher is not running (starting up or shutting down)."""


@dataclass(eq=False, slots=True)
class _Job:
    engine: Any
    texts: Sequence[str | None]
    future: asyncio.Future[list[Any]]
    arrived: float  # time.perf_counter() when queued
    results: list[Any] = field(default_factory=list)
    taken: int = 0
    done: int = 0


# A slice of a job that goes into one batch: (job, start, stop).
_Slice = tuple[_Job, int, int]


@dataclass(slots=True)
class BatchStats:
    """What the batcher reports after each model call (for metrics)."""

    size: int
    seconds: float


class DynamicBatcher:
    """Gathers messages into batches for `engine.classify(texts)` in one worker thread."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        # The collector sleeps on `_waiter` until `_wake_at` messages are queued (or a timer
        # fires): a bare future and call_later cost far less per batch than Event + wait_for.
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 1
        self._task: asyncio.Task[None] | None = None
        self._current: list[_Slice] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        """Messages waiting for the model (not counting the batch being run)."""
        return self._queued

    @property
    def full(self) -> bool:
        """No request can be admitted until the worker takes messages off the queue."""
        return self._queued >= self.max_queue

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qunguard-batch")
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        """Stop collecting; queued requests fail with BatcherStopped."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        stopped = BatcherStopped("the service is shutting down")
        for job in [*(piece[0] for piece in self._current), *self._jobs]:
            if not job.future.done():
                job.future.set_exception(stopped)
        self._jobs.clear()
        self._current = []
        self._queued = 0
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, engine: Any, texts: Sequence[str | None]) -> list[Any]:
        """Classify `texts` with `engine`; results in order. Raises Overloaded when full."""
        if not self.running:
            raise BatcherStopped("the batcher is not running")
        n = len(texts)
        if n == 0:
            return []
        # An empty queue admits any request, so a request larger than the queue still runs.
        if self._queued and self._queued + n > self.max_queue:
            raise Overloaded(f"{self._queued} messages are waiting")
        job = _Job(engine, texts, asyncio.get_running_loop().create_future(), time.perf_counter())
        job.results = [None] * n
        self._jobs.append(job)
        self._queued += n
        waiter = self._waiter
        if waiter is not None and self._queued >= self._wake_at and not waiter.done():
            waiter.set_result(None)
        return await job.future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queued:
                await self._sleep(1, None)
            # Wait for more only until the oldest queued message has waited max_wait: messages
            # that piled up while the worker was busy go at once.
            delay = self._jobs[0].arrived + self.max_wait - time.perf_counter()
            if self._queued < self.max_batch and delay > 0:
                await self._sleep(self.max_batch, delay)
            batch = self._take()
            if not batch:
                continue
            started = time.perf_counter()
            self._current = batch
            outcome = await loop.run_in_executor(self._executor, _run, batch)
            self._current = []
            if self._on_batch is not None:
                size = sum(stop - start for _, start, stop in batch)
                self._on_batch(BatchStats(size, time.perf_counter() - started))
            _deliver(batch, outcome)

    async def _sleep(self, wake_at: int, timeout: float | None) -> None:
        """Until `wake_at` messages are queued, or `timeout` seconds have passed."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._wake_at = wake_at
        timer = None if timeout is None else loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _take(self) -> list[_Slice]:
        """Up to max_batch messages from the head of the queue, splitting a job if needed."""
        batch: list[_Slice] = []
        room = self.max_batch
        while self._jobs and room:
            job = self._jobs[0]
            if job.future.done():  # the client went away while queued
                self._jobs.popleft()
                self._queued -= len(job.texts) - job.taken
                continue
            stop = min(len(job.texts), job.taken + room)
            batch.append((job, job.taken, stop))
            room -= stop - job.taken
            self._queued -= stop - job.taken
            job.taken = stop
            if stop == len(job.texts):
                self._jobs.popleft()
        return batch


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _run(batch: list[_Slice]) -> list[Any]:
    """In the worker thread: classify every slice, grouped by engine (one per reload epoch).

    Returns, per slice, its results or the exception that classifying it raised. When a whole
    batch fails each slice is retried alone, so one bad message fails only its own request.
    """
    by_engine: dict[int, list[int]] = {}
    for k, (job, _, _) in enumerate(batch):
        by_engine.setdefault(id(job.engine), []).append(k)
    outcome: list[Any] = [None] * len(batch)
    for members in by_engine.values():
        engine = batch[members[0]][0].engine
        texts = [t for k in members for t in _texts(batch[k])]
        try:
            results = engine.classify(texts)
        except Exception:
            log.exception("batch failed; retrying its requests one by one")
            for k in members:
                try:
                    outcome[k] = engine.classify(_texts(batch[k]))
                except Exception as exc:
                    outcome[k] = exc
            continue
        offset = 0
        for k in members:
            _, start, stop = batch[k]
            outcome[k] = results[offset : offset + stop - start]
            offset += stop - start
    return outcome


def _texts(piece: _Slice) -> Sequence[str | None]:
    job, start, stop = piece
    return job.texts[start:stop]


def _deliver(batch: list[_Slice], outcome: list[Any]) -> None:
    """On the event loop: fill each job's results; answer a job once all its slices are in."""
    for (job, start, stop), result in zip(batch, outcome, strict=True):
        if job.future.done():
            continue
        if isinstance(result, Exception):
            job.future.set_exception(result)
            continue
        job.results[start:stop] = result
        job.done += stop - start
        if job.done == len(job.texts):
            job.future.set_result(job.results)
