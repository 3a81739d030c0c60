"""gevent: bridge's threads stay OS threads, and a greenlet that waits yields to its hub.

With ``threading`` monkey-patched (``gevent.monkey.patch_all()``, gunicorn's gevent
worker), ``threading.Thread`` starts a greenlet on the calling OS thread, while asyncio
keeps its running loop per OS thread. So under gevent, and only there:

* every thread bridge starts (the background loops, ``force_new_loop``, the worker and
  thread-sensitive threads) is a real OS thread, started with gevent's saved original
  ``_thread.start_new_thread`` (:func:`start_thread`, :func:`start_blocking_portal`);
* a thread that waits for a result another OS thread produces waits on a
  :func:`cross_thread_queue`. In a thread with a gevent hub (a greenlet serving a request,
  an anyio worker greenlet on a loop thread) the wait yields to the hub, so the other
  greenlets of that OS thread run meanwhile; the producer wakes it with the hub's
  thread-safe async watcher. A thread without a hub has nothing to yield to and blocks.
* a wait on ``concurrent.futures.Future`` (lifespan, every ``BlockingPortal`` call) runs
  inside :func:`cross_thread_wait`: gevent's patched locks already yield to the hub and
  accept a release from another OS thread, but a hub with nothing else to watch (a
  process serving no connection: at exit, in a script) raises ``LoopExit`` at once
  instead of waiting; the context keeps the hub watching until the wait is over.
  gevent's patched ``queue`` module has no such support: its queues are greenlet-only,
  hence the queue above.

Only the plain asyncio backend runs under ``patch_all()`` (:func:`check_backend` says so
instead of failing later): gevent removes ``select.epoll`` and ``select.kqueue``, which
trio's I/O needs, and uvloop never runs the loop thread's hub, where anyio's worker
"threads" (greenlets there) wait to run: ``anyio.to_thread`` would hang.

Invariants: whether gevent has patched ``threading`` is asked until the answer is yes
(patching cannot be undone; a process may patch after importing bridge: gunicorn's
gevent worker under ``--preload`` patches in the forked child). Without gevent nothing
here costs more than one ``sys.modules`` lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from _queue import Empty, SimpleQueue  # never gevent's: see cross_thread_queue
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

import anyio
from anyio.from_thread import BlockingPortal
from anyio.from_thread import start_blocking_portal as _anyio_start_blocking_portal

__all__ = (
    "CrossThreadQueue",
    "Joinable",
    "check_backend",
    "cross_thread_queue",
    "cross_thread_wait",
    "gevent_patched",
    "off_the_loop_greenlet",
    "start_blocking_portal",
    "start_thread",
)

T = TypeVar("T")

_patched = False  # once True, for good


def gevent_patched() -> bool:
    """Whether gevent has monkey-patched ``threading`` in this process."""
    return _patched or _ask_gevent()


def _ask_gevent() -> bool:
    global _patched
    monkey = sys.modules.get("gevent.monkey")  # never imported here: only a patcher has
    _patched = monkey is not None and bool(monkey.is_module_patched("threading"))
    return _patched


class CrossThreadQueue(Protocol[T]):
    """``put`` from any OS thread; ``get`` (raising ``queue.Empty`` on timeout) from the
    thread that made the queue."""

    def put(self, item: T) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> T: ...


def cross_thread_queue() -> CrossThreadQueue[T]:
    """A queue for results another OS thread produces, made by the thread that waits.

    Without gevent, or in an OS thread that has no hub: the C ``SimpleQueue``. In a
    greenlet: a :class:`_HubQueue`, whose ``get`` lets the hub run other greenlets.
    """
    if gevent_patched():
        from gevent._hub_local import get_hub_if_exists  # type: ignore[import-untyped]

        if get_hub_if_exists() is not None:
            return _HubQueue()
    return SimpleQueue()


class _HubQueue(Generic[T]):
    """``SimpleQueue``'s ``put``/``get`` for a greenlet: ``get`` yields to the hub.

    ``put`` may come from any OS thread: it appends, then sends the hub's thread-safe
    async watcher. A send while the watcher is stopped is lost, so ``get`` starts the
    watcher before it looks at the items again.
    """

    __slots__ = ("_event", "_items", "_watcher")

    def __init__(self) -> None:
        from gevent import get_hub  # type: ignore[import-untyped]  # gevent ships no stubs
        from gevent.event import Event  # type: ignore[import-untyped]

        self._items: deque[T] = deque()
        self._event = Event()
        self._watcher = get_hub().loop.async_()

    def put(self, item: T) -> None:
        self._items.append(item)
        self._watcher.send()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        items = self._items
        while not items:
            if not block:
                raise Empty
            watcher = self._watcher
            watcher.start(self._event.set)
            try:
                if not items and not self._event.wait(timeout):
                    raise Empty
            finally:
                watcher.stop()
                self._event.clear()
        return items.popleft()


@contextlib.contextmanager
def cross_thread_wait() -> Iterator[None]:
    """Around a blocking wait for another OS thread (``Future.result``, ``portal.call``).

    Without gevent, nothing. Under gevent the patched locks wait on this thread's hub
    (made if the thread has none yet), which keeps a watcher open until the wait is
    over: the wait yields to the other greenlets and ends when the other thread
    releases it, never in ``LoopExit``.
    """
    watcher = _keep_hub_watching() if gevent_patched() else None
    try:
        yield
    finally:
        if watcher is not None:
            watcher.stop()
            watcher.close()


def _keep_hub_watching() -> Any:
    from gevent import get_hub

    watcher = get_hub().loop.async_()
    watcher.start(_nothing)
    return watcher


def _nothing() -> None:
    pass


class Joinable(Protocol):
    def join(self) -> None: ...


class _OsThread:
    """A thread started with gevent's original ``start_new_thread``; ``join`` waits on a
    cross-thread queue, so a greenlet joining it lets the others run."""

    __slots__ = ("_done",)

    def __init__(self, done: CrossThreadQueue[None]) -> None:
        self._done = done

    def join(self) -> None:
        self._done.get()
        self._done.put(None)  # joinable again


def start_thread(target: Callable[[], object], name: str) -> Joinable:
    """Start ``target()`` in a new daemon OS thread (never a greenlet).

    ``name`` names a ``threading.Thread``; under gevent the thread is nameless, and only
    the thread that started it may ``join`` it (once at a time).
    """
    if not gevent_patched():
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread
    from gevent import monkey

    start_new_thread = monkey.get_original("_thread", "start_new_thread")
    done: CrossThreadQueue[None] = cross_thread_queue()

    def run() -> None:
        try:
            target()
        finally:
            done.put(None)

    start_new_thread(run, ())
    return _OsThread(done)


def start_blocking_portal(
    backend: str, options: dict[str, Any]
) -> AbstractContextManager[BlockingPortal]:
    """anyio's ``start_blocking_portal``, whose loop thread is an OS thread under gevent."""
    if not gevent_patched():
        return _anyio_start_blocking_portal(backend, options)
    check_backend(backend, options)
    return _portal_on_os_thread(backend, options)


@contextlib.contextmanager
def _portal_on_os_thread(backend: str, options: dict[str, Any]) -> Iterator[BlockingPortal]:
    # Blocks this OS thread for the moments a loop takes to start: the caller holds a lock
    # that may predate gevent's patching (a real one, under --preload), and a greenlet
    # that yielded while holding it would stall every other greenlet that wants it.
    started: SimpleQueue[BlockingPortal | BaseException] = SimpleQueue()

    async def serve() -> None:
        async with BlockingPortal() as portal:
            started.put(portal)
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(serve, backend=backend, backend_options=options)
        except BaseException as error:
            started.put(error)  # ignored once the portal was handed over

    thread = start_thread(run, f"bridge-{backend}-loop")
    outcome = started.get()
    if isinstance(outcome, BaseException):
        thread.join()
        raise outcome
    try:
        yield outcome
    finally:
        with contextlib.suppress(RuntimeError), cross_thread_wait():  # RuntimeError: stopped
            outcome.call(outcome.stop, False)
        thread.join()


def check_backend(backend: str, options: dict[str, Any]) -> None:
    """Under gevent, refuse trio and uvloop with a message that says what to use instead."""
    if not gevent_patched():
        return
    if backend == "trio":
        reason = "gevent removes select.epoll and select.kqueue, which trio needs"
    elif options.get("use_uvloop"):
        reason = "anyio's worker threads are greenlets there, which uvloop never runs"
    else:
        return
    raise RuntimeError(
        f"the {'trio' if backend == 'trio' else 'asyncio+uvloop'} backend cannot run under "
        f"gevent's monkey.patch_all() ({reason}); use backend='asyncio'"
    )


def off_the_loop_greenlet(loop: asyncio.AbstractEventLoop) -> bool:
    """Under gevent: whether this greenlet is not the one running ``loop`` in this thread.

    asyncio records the running loop per OS thread, so a greenlet that the loop thread's
    hub runs while the loop waits in its selector (an anyio worker "thread" under
    ``patch_all()``) sees it as running. Such a greenlet was spawned (it has a parent)
    and no task of the loop is running; it may block, because its wait yields to the
    hub and the loop carries on.
    """
    if not gevent_patched():
        return False
    from greenlet import getcurrent  # type: ignore[import-untyped]

    return getcurrent().parent is not None and asyncio.current_task(loop) is None
