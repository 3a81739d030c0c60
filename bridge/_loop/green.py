"""gevent: bridge's threads stay OS threads, and a greenlet that waits yields to its hub.

With ``threading`` monkey-patched (``gevent.monkey.patch_all()``, gunicorn's gevent
worker), ``threading.Thread`` starts a greenlet on the calling OS thread, while asyncio
keeps its running loop per OS thread. So under gevent, and only there:

* every thread bridge starts (the background loops, ``force_new_loop``, the worker and
  thread-sensitive threads) is a real OS thread, started with gevent's saved original
  ``_thread.start_new_thread`` (:func:`start_thread`);
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
from typing import Any, Generic, Protocol, TypeVar

__all__ = (
    "CrossThreadQueue",
    "OsThread",
    "check_backend",
    "cross_thread_queue",
    "cross_thread_wait",
    "gevent_patched",
    "off_the_loop_greenlet",
    "start_thread",
)

T = TypeVar("T")

_patched = False  # once True, for good


def gevent_patched() -> bool:
    """Whether gevent has monkey-patched ``threading`` in this process."""
    # gevent.monkey is never imported here: only a patcher has
    return _patched or ("gevent.monkey" in sys.modules and _ask_gevent())


def _ask_gevent() -> bool:
    global _patched
    _patched = bool(sys.modules["gevent.monkey"].is_module_patched("threading"))
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


class OsThread:
    """A started daemon thread: a ``threading.Thread`` or, under gevent, a bare OS thread.

    Under gevent ``join`` waits on a cross-thread queue made by the starting thread, so a
    greenlet joining it lets the others run; only that thread may join (once at a time).
    """

    __slots__ = ("_done", "_ident", "_thread")

    def __init__(self, thread: threading.Thread | None, done: CrossThreadQueue[None]) -> None:
        self._thread = thread
        self._done = done
        self._ident: int | None = None  # under gevent: the OS thread's, once it runs

    def is_current(self) -> bool:
        """Whether the caller runs in this thread (in any of its greenlets)."""
        if self._thread is not None:
            return self._thread is threading.current_thread()
        return self._ident == _os_thread_ident()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        else:
            self._done.get()
            self._done.put(None)  # joinable again


def start_thread(target: Callable[[], object], name: str) -> OsThread:
    """Start ``target()`` in a new daemon OS thread (never a greenlet).

    ``name`` names the ``threading.Thread``; under gevent the thread has no
    ``threading`` record at all.
    """
    if not gevent_patched():
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return OsThread(thread, SimpleQueue())
    from gevent import monkey

    done: CrossThreadQueue[None] = cross_thread_queue()
    started = OsThread(None, done)

    def run() -> None:
        started._ident = _os_thread_ident()
        try:
            target()
        finally:
            done.put(None)

    monkey.get_original("_thread", "start_new_thread")(run, ())
    return started


def _os_thread_ident() -> int:
    from gevent import monkey

    ident: int = monkey.get_original("_thread", "get_ident")()
    return ident


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
