"""A fast, thread-side handle on the shared background loop of one backend.

``bridge._loop.portal.background_portal(backend)`` owns the one loop per backend per
process. A portal call costs a concurrent future and a task per call, which is
too much for one hand-off per request, so a handle calls the loop through its
:class:`~bridge._loop.origin.Origin` (``call_soon`` *is* the origin's
``call_soon_threadsafe``). Only starting request tasks differs by backend:

* asyncio (and uvloop): the coroutine is made on the calling thread and the loop's
  ``create_task`` is what the loop calls back: one callback and no done callback per
  task. asyncio holds tasks weakly, so the spawner keeps each task referenced until
  it ends (``AsgiToWsgi`` keeps its running requests, each holding its task).
* trio: tasks start in a nursery owned by a hub task that lives in the portal's
  task group until the portal stops.

Invariants: a handle belongs to exactly one portal. When the portal changes
(shut down and restarted, or a fork gave the child a fresh registry) the next
:func:`loop_handle` call builds a new handle, so nothing inherited from a parent
process is ever scheduled on.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol

from anyio.abc import TaskStatus
from anyio.from_thread import BlockingPortal

from bridge._loop.origin import Origin
from bridge._loop.portal import background_origin, background_portal, keep_with_loop

__all__ = ("LoopHandle", "loop_handle")


class LoopHandle(Protocol):
    """What the adapters need from a loop, callable from any thread unless noted."""

    portal: BlockingPortal
    #: True when tasks are asyncio tasks that may be cancelled with ``Task.cancel()``.
    native_tasks: bool
    #: ``call_soon(func, *args)``: run ``func(*args)`` on the loop thread soon; never
    #: blocks, never waits (the origin's ``call_soon_threadsafe``).
    call_soon: Callable[..., object]

    def spawn(self, func: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        """Start ``func(*args)`` as a task on the loop; ``func`` must not raise.

        On asyncio the caller keeps the task referenced from its first step on (the
        loop holds tasks weakly); raises ``RuntimeError`` if the loop has closed.
        """

    def call_later_on_loop(self, delay: float, func: Callable[[], object]) -> None:
        """Loop thread only: run ``func()`` after ``delay`` seconds."""


class _AsyncioHandle:
    native_tasks = True

    def __init__(self, portal: BlockingPortal, origin: Origin) -> None:
        if origin.asyncio_loop is None:
            raise RuntimeError("an asyncio handle needs an asyncio loop")
        self.portal = portal
        self.call_soon = origin.call_soon_threadsafe
        self._loop = origin.asyncio_loop

    def spawn(self, func: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        coroutine = func(*args)
        try:
            self.call_soon(self._loop.create_task, coroutine)
        except BaseException:
            coroutine.close()  # never started: no "never awaited" warning
            raise

    def call_later_on_loop(self, delay: float, func: Callable[[], object]) -> None:
        self._loop.call_later(delay, func)


class _TrioHandle:
    native_tasks = False

    def __init__(self, portal: BlockingPortal, origin: Origin, nursery: Any) -> None:
        self.portal = portal
        self.call_soon = origin.call_soon_threadsafe
        self._nursery = nursery

    def spawn(self, func: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        self.call_soon(self._nursery.start_soon, func, *args)

    def call_later_on_loop(self, delay: float, func: Callable[[], object]) -> None:
        self._nursery.start_soon(_sleep_then_call, delay, func)


async def _sleep_then_call(delay: float, func: Callable[[], object]) -> None:
    import trio

    await trio.sleep(delay)
    func()


async def _trio_hub(*, task_status: TaskStatus[Any]) -> None:
    import trio

    # The portal waits for its tasks when it stops: the hub must end first (see _stop_hubs).
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


_lock = threading.Lock()
_handles: dict[str, LoopHandle] = {}
_hub_futures: list[Future[None]] = []


def _stop_hubs() -> None:
    """Cancel the trio hub tasks so the portal can stop at exit (runs before its handler)."""
    if _owner_pid != os.getpid():
        return
    for future in _hub_futures:
        future.cancel()
    _hub_futures.clear()


_owner_pid = os.getpid()
atexit.register(_stop_hubs)


def _after_fork_in_child() -> None:
    global _lock
    global _owner_pid
    _lock = threading.Lock()  # another thread may have held it at fork time
    _handles.clear()
    _hub_futures.clear()
    _owner_pid = os.getpid()


# What a parent's handle holds (its tasks) stays referenced by the parent's loop thread
# frame (bridge._loop.portal.keep_with_loop), so clearing _handles finalises nothing.
os.register_at_fork(after_in_child=_after_fork_in_child)


def _build(backend: str, portal: BlockingPortal) -> LoopHandle:
    origin = background_origin(backend)
    handle: LoopHandle
    if origin.asyncio_loop is None:
        future, nursery = portal.start_task(_trio_hub)
        _hub_futures.append(future)
        handle = _TrioHandle(portal, origin, nursery)
    else:
        handle = _AsyncioHandle(portal, origin)
    keep_with_loop(backend, handle)  # what it holds lives as long as the loop, never longer
    return handle


def loop_handle(backend: str) -> LoopHandle:
    """The handle on the shared loop for ``backend``, built once per portal."""
    portal = background_portal(backend)
    handle = _handles.get(backend)
    if handle is not None and handle.portal is portal:
        return handle
    with _lock:
        handle = _handles.get(backend)
        if handle is None or handle.portal is not portal:
            handle = _build(backend, portal)
            _handles[backend] = handle
        return handle
