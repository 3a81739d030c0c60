"""A bounded queue between the event loop and one worker thread.

Theory of operation
-------------------
One side of a :class:`HandoffQueue` runs on the event loop, the other in a
worker thread; either side may be the producer. The queue bounds memory, not
item counts: it holds at most ``limit`` units (body bytes), except that one
item larger than the limit is accepted into an empty queue so that progress is
always possible.

Invariants:

* Neither side ever blocks on the other. The thread waits on a
  ``threading.Condition``; the loop only takes the lock for O(1) work and
  notifies the condition. The loop waits on a waiter of its
  :class:`~bridge._loop.origin.Origin`; the thread sets it through ``Origin.post``
  (batched with finished thread calls), and only when the loop is actually
  waiting, so a busy stream costs no wake-ups.
* :meth:`finish` ends the stream: the consumer drains what is queued, then
  sees the end. :meth:`abort` fails it: both sides raise the given error at
  their next call, queued items are dropped, and both sides are woken. Abort
  is how a cancelled or disconnected request releases a blocked thread.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bridge._loop.origin import LoopCallback, Waiter, current_origin, wake_waiter

sniffio: Any
try:
    import sniffio
except ImportError:  # anyio works without it; then only asyncio needs no marker
    sniffio = None

__all__ = ("HandoffQueue",)

T = TypeVar("T")


class HandoffQueue(Generic[T]):
    """A FIFO of items between the loop and one thread, bounded by ``limit`` units.

    Create it on the event loop thread.
    """

    def __init__(self, limit: int, size_of: Callable[[T], int]) -> None:
        self._origin = current_origin("a HandoffQueue")
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        # Made by the first thread that has to wait: most exchanges never do.
        self._thread_wakeup: threading.Condition | None = None
        self._threads_waiting = 0  # under the lock: threads waiting on the condition
        self._items: deque[T] = deque()
        self._size = 0
        self._limit = limit
        self._size_of = size_of
        self._finished = False
        self._error: BaseException | None = None
        # The origin's waiter (an asyncio future): cheaper than an anyio.Event.
        self._loop_waiter: Waiter | None = None

    # -- both sides ------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` has been called (items may still be queued)."""
        return self._finished

    def call_soon(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the loop soon; never blocks, callable from any thread.

        ``func`` may use anyio (e.g. ``TaskGroup.start_soon``): it runs in a context
        that names the async library, as anyio's own ``run_sync_soon`` does, because a
        bare loop callback has no current task for sniffio to look at.
        """
        context = contextvars.copy_context()
        if sniffio is not None:
            context.run(sniffio.current_async_library_cvar.set, self._origin.library)
        self._origin.post(LoopCallback(context.run, func))

    def finish(self) -> None:
        """No more items will be put; the consumer drains, then sees the end."""
        with self._lock:
            self._finished = True
            self._wake_both()

    def abort(self, error: BaseException) -> None:
        """Fail the stream: both sides raise ``error`` at their next call."""
        with self._lock:
            if self._error is None:
                self._error = error
            self._items.clear()
            self._size = 0
            self._wake_both()

    def _wake_both(self) -> None:
        wakeup = self._thread_wakeup
        if self._threads_waiting and wakeup is not None:
            wakeup.notify_all()
        self._wake_loop()

    def _wake_thread(self) -> None:
        wakeup = self._thread_wakeup
        if self._threads_waiting and wakeup is not None:  # Condition.notify is not free
            wakeup.notify()

    def _wait_in_thread(self) -> None:
        wakeup = self._thread_wakeup
        if wakeup is None:
            wakeup = self._thread_wakeup = threading.Condition(self._lock)
        self._threads_waiting += 1
        try:
            wakeup.wait()
        finally:
            self._threads_waiting -= 1

    def _wake_loop(self) -> None:
        waiter = self._loop_waiter
        if waiter is not None:
            self._loop_waiter = None
            if threading.get_ident() == self._loop_thread:
                wake_waiter(waiter)  # already on the loop: no need to go through its self-pipe
            else:
                self._origin.post(LoopCallback(wake_waiter, waiter))

    def _new_loop_waiter(self) -> Waiter:
        waiter = self._loop_waiter = self._origin.new_waiter()
        return waiter

    def _has_room(self, size: int) -> bool:
        return not self._size or self._size + size <= self._limit

    def _append(self, item: T, size: int) -> None:
        if self._finished:
            raise RuntimeError("put() after finish()")
        self._items.append(item)
        self._size += size

    # -- thread side ---------------------------------------------------------

    def put_from_thread(self, item: T) -> None:
        """Queue ``item``, waiting while the queue is full. Raises the abort error."""
        size = self._size_of(item)
        with self._lock:
            while self._error is None and not self._has_room(size):
                self._wait_in_thread()
            if self._error is not None:
                raise self._error
            self._append(item, size)
            self._wake_loop()

    def put_many_from_thread(self, items: list[T]) -> None:
        """Queue ``items`` together (one lock, one wake-up), waiting for room for all."""
        size_of = self._size_of
        size = sum(size_of(item) for item in items)
        with self._lock:
            while self._error is None and not self._has_room(size):
                self._wait_in_thread()
            if self._error is not None:
                raise self._error
            for item in items:
                self._append(item, size_of(item))
            self._wake_loop()

    def get_all_from_thread(self) -> list[T] | None:
        """Everything queued (one lock, one wake-up), waiting while the queue is empty;
        None at the end."""
        with self._lock:
            while self._error is None and not self._items and not self._finished:
                self._wait_in_thread()
            if self._error is not None:
                raise self._error
            if not self._items:
                return None
            items = list(self._items)
            self._items.clear()
            self._size = 0
            self._wake_loop()
            return items

    # -- loop side -----------------------------------------------------------

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting while the queue is full. Raises the abort error."""
        size = self._size_of(item)
        while True:
            with self._lock:
                if self._error is not None:
                    raise self._error
                if self._has_room(size):
                    self._append(item, size)
                    self._wake_thread()
                    return
                waiter = self._new_loop_waiter()
            await waiter

    def get_ready(self) -> list[T] | None:
        """Everything queued without waiting; ``[]`` at the end, None when nothing is ready."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._items:
                return self._take_all()
            return [] if self._finished else None

    def _take_all(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        self._size = 0
        self._wake_thread()
        return items

    async def get_all(self) -> list[T]:
        """Everything queued, waiting while the queue is empty; ``[]`` at the end."""
        while True:
            with self._lock:
                if self._error is not None:
                    raise self._error
                if self._items:
                    return self._take_all()
                if self._finished:
                    return []
                waiter = self._new_loop_waiter()
            await waiter
