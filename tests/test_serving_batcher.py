"""The dynamic batcher with fake engines: gathering, order, splitting, overload, isolation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from serving.batcher import BatcherStopped, DynamicBatcher, Overloaded
from serving.engine import MIN_GROUP, length_groups


class Recorder:
    """A fake engine: answers (name, text) for each text and records every call."""

    def __init__(self, name: str = "a", fail_on: str | None = None) -> None:
        self.name = name
        self.fail_on = fail_on
        self.calls: list[list[str | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def classify(self, texts: Sequence[str | None]) -> list[tuple[str, str | None]]:
        self.entered.set()
        assert self.gate.wait(10)
        self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError("bad message")
        return [(self.name, t) for t in texts]


def run(coro_factory):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_factory())


async def until_busy(engine: Recorder) -> None:
    """Wait until the worker is inside engine.classify (and blocked on its gate)."""
    for _ in range(10_000):
        if engine.entered.is_set():
            return
        await asyncio.sleep(0.001)
    raise TimeoutError("the worker never started")


def make(**kwargs: float) -> DynamicBatcher:
    options = {"max_batch": 8, "max_wait_ms": 5.0, "max_queue": 64, **kwargs}
    return DynamicBatcher(**options)  # type: ignore[arg-type]


def test_concurrent_requests_share_one_batch_and_keep_their_order() -> None:
    engine = Recorder()

    async def scenario() -> list[list[tuple[str, str | None]]]:
        batcher = make()
        batcher.start()
        jobs = [batcher.submit(engine, [f"r{i}m0", f"r{i}m1"]) for i in range(3)]
        results = await asyncio.gather(*jobs)
        await batcher.stop()
        return results

    results = run(scenario)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 6
    for i, result in enumerate(results):
        assert result == [("a", f"r{i}m0"), ("a", f"r{i}m1")]


def test_large_request_is_split_across_batches_in_order() -> None:
    engine = Recorder()

    async def scenario() -> list[tuple[str, str | None]]:
        batcher = make(max_batch=3, max_wait_ms=0)
        batcher.start()
        result = await batcher.submit(engine, [str(i) for i in range(8)])
        await batcher.stop()
        return result

    assert run(scenario) == [("a", str(i)) for i in range(8)]
    assert [len(call) for call in engine.calls] == [3, 3, 2]


def test_max_batch_one_turns_batching_off() -> None:
    engine = Recorder()

    async def scenario() -> None:
        batcher = make(max_batch=1)
        batcher.start()
        await asyncio.gather(*(batcher.submit(engine, [str(i)]) for i in range(5)))
        await batcher.stop()

    run(scenario)
    assert [len(call) for call in engine.calls] == [1] * 5


def test_full_queue_refuses_at_once_and_empty_queue_admits_big_requests() -> None:
    engine = Recorder()
    engine.gate.clear()  # the worker blocks on its first batch

    async def scenario() -> None:
        batcher = make(max_batch=2, max_queue=4, max_wait_ms=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(engine, ["a", "b"]))
        await until_busy(engine)
        second = asyncio.ensure_future(batcher.submit(engine, ["c", "d", "e"]))
        await asyncio.sleep(0)
        assert batcher.queued == 3
        with pytest.raises(Overloaded):
            await batcher.submit(engine, ["f", "g"])
        third = asyncio.ensure_future(batcher.submit(engine, ["h"]))  # 3 + 1 fits
        await asyncio.sleep(0)
        engine.gate.set()
        assert len(await first) == 2 and len(await second) == 3 and len(await third) == 1
        # An empty queue admits a request larger than the queue.
        assert len(await batcher.submit(engine, list("abcdefg"))) == 7
        await batcher.stop()

    run(scenario)


def test_each_request_keeps_the_engine_it_was_admitted_with() -> None:
    old, new = Recorder("old"), Recorder("new")

    async def scenario() -> tuple[list[object], list[object]]:
        batcher = make(max_wait_ms=20)
        batcher.start()
        # Both are queued into the same batch; a reload between them changed the engine.
        before = asyncio.ensure_future(batcher.submit(old, ["x"]))
        after = asyncio.ensure_future(batcher.submit(new, ["y"]))
        result = await before, await after
        await batcher.stop()
        return result

    before, after = run(scenario)
    assert before == [("old", "x")] and after == [("new", "y")]


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    engine = Recorder(fail_on="bad")

    async def scenario() -> list[object]:
        batcher = make(max_wait_ms=20)
        batcher.start()
        outcomes = await asyncio.gather(
            batcher.submit(engine, ["ok1"]),
            batcher.submit(engine, ["bad"]),
            batcher.submit(engine, ["ok2"]),
            return_exceptions=True,
        )
        await batcher.stop()
        return outcomes

    good, bad, other = run(scenario)
    assert good == [("a", "ok1")] and other == [("a", "ok2")]
    assert isinstance(bad, ValueError)


def test_cancelled_requests_are_skipped() -> None:
    engine = Recorder()
    engine.gate.clear()

    async def scenario() -> None:
        batcher = make(max_batch=1, max_wait_ms=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(engine, ["first"]))
        await until_busy(engine)
        gone = asyncio.ensure_future(batcher.submit(engine, ["gone"]))
        await asyncio.sleep(0)
        gone.cancel()
        engine.gate.set()
        await first
        assert await batcher.submit(engine, ["last"]) == [("a", "last")]
        await batcher.stop()

    run(scenario)
    assert ["gone"] not in engine.calls


def test_stop_fails_waiting_requests_and_refuses_new_ones() -> None:
    engine = Recorder()
    engine.gate.clear()

    async def scenario() -> None:
        batcher = make(max_batch=1, max_wait_ms=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(engine, ["a"]))
        await until_busy(engine)
        waiting = asyncio.ensure_future(batcher.submit(engine, ["b"]))
        await asyncio.sleep(0)
        assert batcher.queued == 1
        await batcher.stop()
        engine.gate.set()
        for job in (first, waiting):
            with pytest.raises(BatcherStopped):
                await job
        with pytest.raises(BatcherStopped):
            await batcher.submit(engine, ["c"])

    run(scenario)


def test_batch_stats_are_reported() -> None:
    engine = Recorder()
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = DynamicBatcher(
            max_batch=4, max_wait_ms=5, max_queue=16, on_batch=lambda s: sizes.append(s.size)
        )
        batcher.start()
        await asyncio.gather(*(batcher.submit(engine, ["x", "y"]) for _ in range(3)))
        await batcher.stop()

    run(scenario)
    assert sum(sizes) == 6 and max(sizes) <= 4


def test_length_groups_bound_padding_and_cover_every_text() -> None:
    lengths = [3, 120, 5, 40, 4, 6, 33, 35, 200, 2, 64, 7, 8, 90]
    groups = length_groups(lengths, max_len=128)
    flat = [i for group in groups for i in group]
    assert sorted(flat) == list(range(len(lengths)))
    clipped = [min(n, 128) for n in lengths]
    assert [clipped[i] for i in flat] == sorted(clipped)
    for group in groups:
        # Past its first MIN_GROUP texts, a group takes none more than twice its shortest.
        shortest = clipped[group[0]]
        assert all(clipped[i] <= 2 * shortest for i in group[MIN_GROUP:])
    assert len(groups) > 1
    assert length_groups([], 128) == []
    assert length_groups([5] * 100, 128) == [list(range(100))]
