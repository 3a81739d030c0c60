"""Streaming across the sync/async boundary, one item at a time, with bounded memory.

:class:`AsyncIteratorInThread` -- a producer thread pulls from a sync iterator into a
buffer of at most ``buffer_size`` items; the consumer awaits items on its loop. The
producer blocks (in its own thread) while the buffer is full, so memory is bounded by
``buffer_size`` items whatever the speeds. The iterable's ``close()`` runs in the
producer thread after the last item, on error, or when the consumer closes early.

:class:`SyncIteratorOverAsync` -- each ``__next__`` is one ``async_to_sync`` step of the
async iterator; no buffer at all.

Invariants: the producer never touches the loop except through its
:class:`~bridge._loop.origin.Origin` (``post``); the consumer never blocks the loop (it
only awaits); a limiter token is held from the first ``__anext__`` until the producer
is done and released on the loop.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Final, Generic, TypeVar

import anyio
import anyio.to_thread

from bridge._http.logfields import EventLog
from bridge._loop.blocking import call_async
from bridge._loop.origin import LoopCallback, Origin, Waiter, current_origin, wake_waiter
from bridge._loop.threads import run_serving, worker_pool

__all__ = ("AsyncIteratorInThread", "SyncIteratorOverAsync")

T = TypeVar("T")
logger = logging.getLogger("bridge.sync")
log: Final = EventLog(logger, "iterate_in_thread")


class _Channel(Generic[T]):
    """What the producer thread and the consumer share; the producer holds only this.

    So a consumer that drops its iterator without ``aclose()`` (``break`` out of
    ``async for``) lets it be collected, and its finaliser stops the producer.
    """

    def __init__(self, iterator: Iterator[T], iterable: Iterable[T], size: int) -> None:
        self.iterator = iterator
        self.iterable = iterable
        self.size = size
        self.lock = threading.Condition(threading.Lock())
        self.buffer: deque[T] = deque()
        self.done = False  # the producer has finished (and closed the iterable)
        self.error: BaseException | None = None  # raised by the iterator
        self.close_error: BaseException | None = None  # raised by the iterable's close()
        self.stopping = False  # the consumer asked the producer to stop
        self.abandoned = False  # ... by dropping its iterator: nobody will see errors
        self.origin: Origin | None = None  # the consumer's loop, once started
        self.waiter: Waiter | None = None  # the consumer's waiter, if waiting

    def produce(self) -> None:
        """In the producer thread: fill the buffer until exhausted, failed or stopped."""
        try:
            for item in self.iterator:
                with self.lock:
                    while len(self.buffer) >= self.size and not self.stopping:
                        self.lock.wait()
                    if self.stopping:
                        break
                    self.buffer.append(item)
                    waiter, self.waiter = self.waiter, None
                if waiter is not None:
                    self.wake(waiter)
        except BaseException as error:
            self.error = error
        finally:
            self.close_iterable()
            with self.lock:
                self.done = True
                waiter, self.waiter = self.waiter, None
                abandoned = self.abandoned
            if waiter is not None:
                self.wake(waiter)
            if abandoned and self.close_error is not None:
                log.warning(
                    "failed",
                    None,
                    "closing an iterable dropped without aclose() raised %s: %s",
                    type(self.close_error).__name__,
                    self.close_error,
                )

    def wake(self, waiter: Waiter) -> None:
        if self.origin is not None:  # always, once a consumer waits
            self.origin.post(LoopCallback(wake_waiter, waiter))

    def close_iterable(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is None:
            return
        try:
            close()
        except BaseException as error:
            self.close_error = error

    def stop(self, *, abandoned: bool = False) -> None:
        with self.lock:
            self.abandoned = abandoned
            self.stopping = True
            self.buffer.clear()
            self.lock.notify()


class AsyncIteratorInThread(AsyncIterator[T]):
    def __init__(
        self,
        iterator: Iterator[T],
        iterable: Iterable[T],
        buffer_size: int,
        limiter: anyio.CapacityLimiter | None,
    ) -> None:
        self._channel = _Channel(iterator, iterable, buffer_size)
        self._limiter = limiter
        self._started = False
        self._borrower: object | None = object()
        self._origin: Origin | None = None

    async def __anext__(self) -> T:
        if not self._started:
            await self._start()
        channel = self._channel
        while True:
            with channel.lock:
                if channel.buffer:
                    item = channel.buffer.popleft()
                    channel.lock.notify()
                    return item
                if channel.done:
                    break
                waiter = channel.waiter = self._new_waiter()
            await waiter
        self._release()
        error = channel.error or channel.close_error
        channel.error = channel.close_error = None
        if error is not None:
            raise error
        raise StopAsyncIteration

    async def _start(self) -> None:
        if self._limiter is None:
            self._limiter = anyio.to_thread.current_default_thread_limiter()
        await self._limiter.acquire_on_behalf_of(self._borrower)
        self._started = True
        origin = self._origin = self._channel.origin = current_origin(
            "iterating iterate_in_thread()"
        )
        producer = _Producer(self._channel, contextvars.copy_context(), origin)
        worker_pool().put(producer)

    def _new_waiter(self) -> Waiter:
        if self._origin is None:
            raise RuntimeError("waiting for an iterator that has not started")
        return self._origin.new_waiter()

    def _release(self) -> None:
        if self._limiter is not None and self._borrower is not None:
            self._limiter.release_on_behalf_of(self._borrower)
            self._borrower = None

    async def aclose(self) -> None:
        """Stop the producer, close the iterable in its thread and wait for both."""
        channel = self._channel
        if not self._started:
            self._started = channel.done = True
            await anyio.to_thread.run_sync(channel.close_iterable, limiter=self._limiter)
            self._raise_close_error()
            return
        channel.stop()
        with anyio.CancelScope(shield=True):
            while True:
                with channel.lock:
                    if channel.done:
                        break
                    waiter = channel.waiter = self._new_waiter()
                await waiter
        self._release()
        channel.error = None  # the consumer stopped early: later items' errors are not its
        self._raise_close_error()

    def _raise_close_error(self) -> None:
        error, self._channel.close_error = self._channel.close_error, None
        if error is not None:
            raise error

    def __del__(self) -> None:
        # Dropped without aclose(): stop the producer (it closes the iterable in its own
        # thread) and give the limiter token back on its loop.
        if not self._started or self._borrower is None:
            return
        self._channel.stop(abandoned=True)
        limiter, borrower, self._borrower = self._limiter, self._borrower, None
        if limiter is not None and self._origin is not None:  # always, once started
            # A closed loop drops the callback, and its limiter is gone with it.
            self._origin.post(LoopCallback(limiter.release_on_behalf_of, borrower))


class _Producer:
    __slots__ = ("channel", "context", "origin")

    def __init__(
        self, channel: _Channel[Any], context: contextvars.Context, origin: Origin
    ) -> None:
        self.channel = channel
        self.context = context
        self.origin = origin

    def run(self) -> None:
        run_serving(self.origin, lambda: self.context.run(self.channel.produce))


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
