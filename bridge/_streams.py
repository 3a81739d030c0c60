"""Streaming across the sync/async boundary, one item at a time, with bounded memory.

:class:`AsyncIteratorInThread` -- a producer thread pulls from a sync iterator into a
buffer of at most ``buffer_size`` items; the consumer awaits items on its loop. The
producer blocks (in its own thread) while the buffer is full, so memory is bounded by
``buffer_size`` items whatever the speeds. The iterable's ``close()`` runs in the
producer thread after the last item, on error, or when the consumer closes early.

:class:`SyncIteratorOverAsync` -- each ``__next__`` is one ``async_to_sync`` step of the
async iterator; no buffer at all.

Invariants: the producer never touches the loop except through the loop's thread-safe
"call soon" hook; the consumer never blocks the loop (it only awaits); a limiter token is
held from the first ``__anext__`` until the producer is done and released on the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

from ._crossing import call_async
from ._threads import worker_pool

__all__ = ("AsyncIteratorInThread", "SyncIteratorOverAsync")

T = TypeVar("T")


def _loop_waiter() -> tuple[Any, Callable[[], None], Callable[[Any], Any]]:
    """(waiter, wake_from_any_thread, await_it) for the running asyncio or trio loop."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        future = loop.create_future()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(_set_done, future)
            except RuntimeError:
                pass  # loop closed: nobody waits any more

        return future, wake, _await_future
    import trio

    event = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def wake_trio() -> None:
        try:
            token.run_sync_soon(event.set)
        except RuntimeError:
            pass

    return event, wake_trio, _await_event


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _await_future(future: asyncio.Future[None]) -> None:
    await future


async def _await_event(event: Any) -> None:
    await event.wait()


class AsyncIteratorInThread(AsyncIterator[T]):
    def __init__(
        self,
        iterator: Iterator[T],
        iterable: Iterable[T],
        buffer_size: int,
        limiter: anyio.CapacityLimiter | None,
    ) -> None:
        self._iterator = iterator
        self._iterable = iterable
        self._size = buffer_size
        self._limiter = limiter
        self._lock = threading.Condition(threading.Lock())
        self._buffer: deque[T] = deque()
        self._done = False  # the producer has finished (and closed the iterable)
        self._error: BaseException | None = None  # raised by the iterator
        self._close_error: BaseException | None = None  # raised by the iterable's close()
        self._stopping = False  # the consumer asked the producer to stop
        self._wake: Callable[[], None] | None = None  # the consumer's waiter, if waiting
        self._started = False
        self._borrower: object | None = object()

    async def __anext__(self) -> T:
        if not self._started:
            await self._start()
        while True:
            with self._lock:
                if self._buffer:
                    item = self._buffer.popleft()
                    self._lock.notify()
                    return item
                if self._done:
                    break
                waiter, self._wake, wait = _loop_waiter()
            await wait(waiter)
        self._release()
        error = self._error or self._close_error
        self._error = self._close_error = None
        if error is not None:
            raise error
        raise StopAsyncIteration

    async def _start(self) -> None:
        if self._limiter is None:
            self._limiter = anyio.to_thread.current_default_thread_limiter()
        await self._limiter.acquire_on_behalf_of(self._borrower)
        self._started = True
        worker_pool().put(_Producer(self, contextvars.copy_context()))

    def _release(self) -> None:
        if self._limiter is not None and self._borrower is not None:
            self._limiter.release_on_behalf_of(self._borrower)
            self._borrower = None

    def produce(self) -> None:
        """In the producer thread: fill the buffer until exhausted, failed or stopped."""
        try:
            for item in self._iterator:
                with self._lock:
                    while len(self._buffer) >= self._size and not self._stopping:
                        self._lock.wait()
                    if self._stopping:
                        break
                    self._buffer.append(item)
                    wake, self._wake = self._wake, None
                if wake is not None:
                    wake()
        except BaseException as error:
            self._error = error
        finally:
            self._close_iterable()
            with self._lock:
                self._done = True
                wake, self._wake = self._wake, None
            if wake is not None:
                wake()

    def _close_iterable(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is None:
            return
        try:
            close()
        except BaseException as error:
            self._close_error = error

    async def aclose(self) -> None:
        """Stop the producer, close the iterable in its thread and wait for both."""
        if not self._started:
            self._started = self._done = True
            await anyio.to_thread.run_sync(self._close_iterable, limiter=self._limiter)
            self._raise_close_error()
            return
        with self._lock:
            self._stopping = True
            self._buffer.clear()
            self._lock.notify()
        with anyio.CancelScope(shield=True):
            while True:
                with self._lock:
                    if self._done:
                        break
                    waiter, self._wake, wait = _loop_waiter()
                await wait(waiter)
        self._release()
        self._error = None  # the consumer stopped early: later items' errors are not its
        self._raise_close_error()

    def _raise_close_error(self) -> None:
        error, self._close_error = self._close_error, None
        if error is not None:
            raise error


class _Producer:
    __slots__ = ("context", "stream")

    def __init__(self, stream: AsyncIteratorInThread[Any], context: contextvars.Context) -> None:
        self.stream = stream
        self.context = context

    def run(self) -> None:
        self.context.run(self.stream.produce)


class SyncIteratorOverAsync(Iterator[T], Generic[T]):
    def __init__(self, aiterable: AsyncIterable[T], backend: str) -> None:
        self._aiterator = aiterable.__aiter__()
        self._backend = backend
        self._closed = False

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        try:
            item: T = call_async(
                _anext, (self._aiterator,), {}, force_new_loop=False, backend=self._backend
            )
        except StopAsyncIteration:
            self._closed = True
            raise StopIteration from None
        return item

    def close(self) -> None:
        """Close the async iterator (``aclose()``) on its loop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._aiterator, "aclose", None)
        if aclose is not None:
            call_async(aclose, (), {}, force_new_loop=False, backend=self._backend)

    def __enter__(self) -> SyncIteratorOverAsync[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _anext(aiterator: AsyncIterator[T]) -> T:
    return await aiterator.__anext__()
