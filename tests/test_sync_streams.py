"""Streaming across the boundary: bridge.iterate_in_thread and bridge.iterate_in_loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import bridge

pytestmark = pytest.mark.timeout(30)

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="-")


class Body:
    """A WSGI-style response iterable with ``close()``; records where things ran."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.produced = 0
        self.closed_in: threading.Thread | None = None
        self.closed = threading.Event()
        self.tags: list[str] = []

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_at:
                raise ValueError(f"chunk {index} failed")
            self.produced += 1
            self.tags.append(tag.get())
            yield chunk

    def close(self) -> None:
        self.closed_in = threading.current_thread()
        self.closed.set()


@pytest.mark.anyio
async def test_iterate_in_thread_yields_every_item_and_closes_in_the_worker() -> None:
    body = Body([b"a", b"b", b"c"])
    tag.set("request-1")
    chunks = [chunk async for chunk in bridge.iterate_in_thread(body)]
    assert chunks == [b"a", b"b", b"c"]
    assert body.closed_in is not None
    assert body.closed_in is not threading.current_thread()
    assert body.tags == ["request-1"] * 3


@pytest.mark.anyio
async def test_iterate_in_thread_propagates_the_iterators_error_after_closing() -> None:
    body = Body([b"a", b"b", b"c"], fail_at=1)
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in bridge.iterate_in_thread(body):
            received.append(chunk)

    with pytest.raises(ValueError, match="chunk 1 failed"):
        await consume()
    assert received == [b"a"]
    assert body.closed_in is not None


@pytest.mark.anyio
@pytest.mark.parametrize("buffer_size", [1, 4])
async def test_iterate_in_thread_reads_ahead_at_most_buffer_size(buffer_size: int) -> None:
    produced = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        for i in itertools.count():
            produced += 1
            yield i

    stream = bridge.iterate_in_thread(endless(), buffer_size=buffer_size)
    assert await stream.__anext__() == 0
    assert await stream.__anext__() == 1
    await anyio.sleep(0.1)  # time enough to run away if the buffer were unbounded
    # two consumed, buffer_size buffered, one held by the blocked producer
    assert produced <= 2 + buffer_size + 1
    await stream.aclose()


@pytest.mark.anyio
async def test_closing_early_stops_the_producer_and_closes_the_iterable() -> None:
    body = Body([b"x"] * 100)
    limiter = anyio.CapacityLimiter(1)
    stream = bridge.iterate_in_thread(body, limiter=limiter)
    assert await stream.__anext__() == b"x"
    assert limiter.borrowed_tokens == 1
    await stream.aclose()
    assert body.closed_in is not None
    assert body.produced < 100
    assert limiter.borrowed_tokens == 0


@pytest.mark.anyio
async def test_an_abandoned_iterator_stops_its_producer_and_returns_its_token() -> None:
    body = Body([b"x"] * 100)
    limiter = anyio.CapacityLimiter(1)

    async def first_chunk_only() -> bytes:
        async for chunk in bridge.iterate_in_thread(body, limiter=limiter):
            return chunk  # leaves the loop without aclose(): the iterator is dropped
        raise AssertionError("empty")

    assert await first_chunk_only() == b"x"
    gc.collect()
    assert await anyio.to_thread.run_sync(body.closed.wait, 10)
    await anyio.lowlevel.checkpoint()  # the token comes back through the loop
    assert limiter.borrowed_tokens == 0
    assert body.produced < 100


class FailingClose(Body):
    def close(self) -> None:
        super().close()
        raise OSError("disk gone")


@pytest.mark.anyio
async def test_an_abandoned_iterables_close_error_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = FailingClose([b"x"] * 100)

    async def first_chunk_only() -> bytes:
        async for chunk in bridge.iterate_in_thread(body):
            return chunk
        raise AssertionError("empty")

    caplog.set_level(logging.WARNING, logger="bridge.sync")
    await first_chunk_only()
    gc.collect()
    assert await anyio.to_thread.run_sync(body.closed.wait, 10)
    for _ in range(100):  # the line is written just after close() returns, in that thread
        if caplog.records:
            break
        await anyio.to_thread.run_sync(threading.Event().wait, 0.01)
    assert [record.getMessage() for record in caplog.records] == [
        "iterate_in_thread failed: closing an iterable dropped without aclose() raised "
        "OSError: disk gone"
    ]


@pytest.mark.anyio
async def test_closing_before_iterating_still_closes_the_iterable() -> None:
    body = Body([b"x"])
    stream = bridge.iterate_in_thread(body)
    await stream.aclose()
    assert body.closed_in is not None
    assert body.produced == 0


@pytest.mark.anyio
async def test_async_to_sync_inside_the_iterated_body_runs_on_the_consumers_loop() -> None:
    async def where() -> object:
        return current_loop()

    def body() -> Iterator[object]:
        yield bridge.async_to_sync(where)()

    assert [loop async for loop in bridge.iterate_in_thread(body())] == [current_loop()]


def test_iterate_in_thread_rejects_an_empty_buffer() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        bridge.iterate_in_thread([], buffer_size=0)


# -- iterate_in_loop -------------------------------------------------------------------


class Ticker:
    def __init__(self) -> None:
        self.closed = False
        self.loops: set[object] = set()

    async def ticks(self, count: int) -> AsyncIterator[int]:
        try:
            for i in range(count):
                self.loops.add(current_loop())
                await anyio.lowlevel.checkpoint()
                yield i
        finally:
            self.closed = True


def current_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        import trio

        return trio.lowlevel.current_trio_token()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_iterate_in_loop_from_a_plain_thread(backend: str) -> None:
    ticker = Ticker()

    def consume() -> list[int]:
        return list(bridge.iterate_in_loop(ticker.ticks(4), backend=backend))

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(consume).result(timeout=20) == [0, 1, 2, 3]
    assert len(ticker.loops) == 1


def test_closing_iterate_in_loop_early_runs_the_generators_cleanup() -> None:
    ticker = Ticker()
    with bridge.iterate_in_loop(ticker.ticks(100)) as ticks:
        assert next(ticks) == 0
    assert ticker.closed


@pytest.mark.anyio
async def test_iterate_in_loop_inside_sync_to_async_uses_the_callers_loop() -> None:
    ticker = Ticker()

    def consume() -> list[int]:
        return list(bridge.iterate_in_loop(ticker.ticks(3)))

    assert await bridge.sync_to_async(consume)() == [0, 1, 2]
    assert ticker.loops == {current_loop()}


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_streaming_256_mib_through_a_slow_consumer_keeps_memory_bounded() -> None:
    psutil = pytest.importorskip("psutil")
    chunk = b"x" * 65536
    total = 256 * 1024 * 1024
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    received = 0

    def body() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk[1:] + b"x"  # a fresh 64 KiB object each time, as a real body's

    async for piece in bridge.iterate_in_thread(body(), buffer_size=8):
        received += len(piece)
        if received % (16 * 1024 * 1024) == 0:
            peak = max(peak, process.memory_info().rss)
            await anyio.sleep(0.001)  # the consumer is slower than the producer
    assert received == total
    assert peak - baseline < 32 * 1024 * 1024
