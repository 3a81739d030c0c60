"""The one place that knows asyncio from trio: a running event loop seen from any thread.

Theory of operation
-------------------
An :class:`Origin` stands for one running event loop: an asyncio loop (uvloop
included) or a trio run (its ``TrioToken``). Everything else in ``bridge._loop``
talks to a loop through its origin and never asks which library runs it:

* :meth:`Origin.call_soon_threadsafe` -- from any thread, run ``fn(*args)`` on the
  loop soon (``loop.call_soon_threadsafe`` / ``TrioToken.run_sync_soon``, stored as
  the attribute itself, so calling it costs what calling the library costs). Raises
  ``RuntimeError`` once the loop has closed, as both libraries do.
* :meth:`Origin.post` -- the batched form: deliver a :class:`Wakeable` to the loop,
  which runs its ``wake()``. Items posted between two passes of the loop share one
  wake-up (one self-pipe write on asyncio) instead of one each; finished thread calls,
  the adapters' queues and the stream producers all post here.
* Waiters -- :meth:`Origin.new_waiter` makes a one-shot wake-up for a task of this loop:
  an asyncio future, or on trio a :class:`TrioWaiter` with the same four operations
  (``await waiter``, ``done()``, ``set_result(None)``, and nothing else is used).
  :func:`wake_waiter` sets one on the loop thread; ``origin.post(LoopCallback(wake_waiter,
  waiter))`` sets it from another thread.
* :meth:`Origin.start_task_soon` -- from any thread, start a coroutine as a task of the
  loop (an asyncio task, or a trio system task).

:func:`current_origin` gives the running loop's origin; :func:`origin_of` the origin of
a loop or token held elsewhere. There is at most one origin per loop alive at a time, so
the batching holds for the whole loop.

Invariants: an origin is created on (or for) a running loop and references it strongly;
the registry holds origins weakly, so a loop lives as long as something that may still
call it back (an in-flight call, a queue, the last-used cache) holds its origin. A
posted item is drained by a ``drain`` that starts after the post, because ``post`` reads
``pending`` after appending and ``drain`` clears it before draining.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, Protocol

from bridge._http.logfields import EventLog
from bridge._loop.interop import anyio_token_for, origin_from_anyio_worker

__all__ = (
    "LoopCallback",
    "Origin",
    "TrioWaiter",
    "Waiter",
    "Wakeable",
    "current_origin",
    "origin_of",
    "wake_waiter",
)

logger = logging.getLogger("bridge.sync")
log: Final = EventLog(logger, "sync_to_async")
_get_running_loop = asyncio._get_running_loop


class Waiter(Protocol):
    """A one-shot wake-up for one task: an ``asyncio.Future`` or a :class:`TrioWaiter`."""

    def done(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def __await__(self) -> Generator[Any, Any, Any]: ...


class TrioWaiter:
    """A trio ``Event`` with the part of the future API the waiters use."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = sys.modules["trio"].Event()  # made on a running trio loop: imported

    def done(self) -> bool:
        return self._event.is_set()  # type: ignore[no-any-return]

    def set_result(self, result: None, /) -> None:
        self._event.set()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self._event.wait().__await__()  # type: ignore[no-any-return]


def wake_waiter(waiter: Waiter) -> None:
    """On the loop thread: wake ``waiter`` (a cancelled asyncio wait has cancelled it)."""
    if not waiter.done():
        waiter.set_result(None)


class Wakeable(Protocol):
    def wake(self) -> None: ...


class LoopCallback:
    """A posted item that runs ``fn(*args)`` on the loop."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., object], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def wake(self) -> None:
        self.fn(*self.args)


class Origin:
    """One running asyncio loop or trio run, usable from any thread (module docstring)."""

    __slots__ = (
        "__weakref__",
        "anyio_token",
        "asyncio_loop",
        "call_soon_threadsafe",
        "default_limiter",
        "items",
        "library",
        "native",
        "new_waiter",
        "pending",
    )

    call_soon_threadsafe: Callable[..., object]
    new_waiter: Callable[[], Waiter]

    def __init__(self, native: Any) -> None:
        #: The asyncio loop or the ``trio.lowlevel.TrioToken``.
        self.native = native
        #: anyio's token for the same loop, if anyio has one (``anyio.from_thread``);
        #: set by :func:`current_origin` on the loop's thread.
        self.anyio_token: Any = None
        #: anyio's default thread limiter of this loop, looked up once (``crossing``).
        self.default_limiter: Any = None
        self.items: deque[Wakeable] = deque()
        self.pending = False
        if isinstance(native, asyncio.AbstractEventLoop):
            self.asyncio_loop: asyncio.AbstractEventLoop | None = native
            self.library = "asyncio"
            self.call_soon_threadsafe = native.call_soon_threadsafe
            self.new_waiter = native.create_future
        else:
            self.asyncio_loop = None
            self.library = "trio"
            self.call_soon_threadsafe = native.run_sync_soon
            self.new_waiter = TrioWaiter

    def post(self, item: Wakeable) -> None:
        """From any thread: deliver ``item`` to the loop, which then runs ``item.wake()``."""
        self.items.append(item)
        if not self.pending:
            self.pending = True
            try:
                self.call_soon_threadsafe(self.drain)
            except RuntimeError:  # closed (trio: RunFinishedError)
                self.drop()

    def drain(self) -> None:
        self.pending = False
        items = self.items
        while items:
            items.popleft().wake()

    def drop(self) -> None:
        """The loop is gone, and with it every caller: say so for errors nobody will see."""
        self.pending = False
        while self.items:
            error = getattr(self.items.popleft(), "error", None)
            if error is not None:
                log.warning(
                    "dropped",
                    None,
                    "a function run by sync_to_async raised after its event loop had closed: "
                    "%s: %s",
                    type(error).__name__,
                    error,
                )

    def start_task_soon(
        self, coroutine: Coroutine[Any, Any, Any], context: Any, owner: TaskOwner
    ) -> None:
        """From any thread: run ``coroutine`` as a task of the loop, in ``context``.

        On asyncio the task is kept in ``owner.task`` (asyncio holds tasks weakly); on
        trio it is a system task. Raises ``RuntimeError`` if the loop has closed.
        """
        if self.asyncio_loop is not None:
            self.call_soon_threadsafe(_create_task, self.asyncio_loop, coroutine, context, owner)
        else:
            self.call_soon_threadsafe(_spawn_system_task, coroutine, context)


class TaskOwner(Protocol):
    task: Any


def _create_task(
    loop: asyncio.AbstractEventLoop,
    coroutine: Coroutine[Any, Any, Any],
    context: Any,
    owner: TaskOwner,
) -> None:
    owner.task = loop.create_task(coroutine, context=context)


def _spawn_system_task(coroutine: Coroutine[Any, Any, Any], context: Any) -> None:
    sys.modules["trio"].lowlevel.spawn_system_task(await_started, coroutine, context=context)


async def await_started(coroutine: Coroutine[Any, Any, Any]) -> None:
    """``await coroutine``, which may have been started (sent to) already.

    A native coroutine suspended in an ``await`` refuses a plain ``await`` ("being awaited
    already"); its ``__await__`` iterator resumes it where it stopped.
    """
    await _Resumed(coroutine)


class _Resumed:
    __slots__ = ("coroutine",)

    def __init__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.coroutine = coroutine

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.coroutine.__await__()


# At most one origin per loop alive: keyed by id(native), which cannot be reused while
# the origin (holding the loop) lives, and removed when it dies.
_origins: weakref.WeakValueDictionary[int, Origin] = weakref.WeakValueDictionary()
_last: Origin | None = None  # the origin asked for last: most processes run one loop
_lock = threading.Lock()


def current_origin(what: str) -> Origin:
    """The running loop's origin; ``RuntimeError`` naming ``what`` if no loop runs here."""
    global _last
    native: Any = _get_running_loop()
    if native is None:
        native = _running_trio_token(what)
    last = _last
    if last is not None and last.native is native:
        return last
    origin = origin_of(native)
    if origin.anyio_token is None:  # made from another thread, which cannot ask anyio
        origin.anyio_token = anyio_token_for(native)
    _last = origin
    return origin


def origin_of(native: Any) -> Origin:
    """From any thread: the origin of an asyncio loop or a ``TrioToken``."""
    origin = _origins.get(id(native))
    if origin is not None:
        return origin
    with _lock:  # loops running in several threads may get here at once
        origin = _origins.get(id(native))
        if origin is None:
            origin = _origins[id(native)] = Origin(native)
    return origin


def _loop_of_the_parent(*args: object) -> None:
    raise RuntimeError("this event loop runs in the parent process, not in this forked child")


def _forget_loops_after_fork() -> None:
    """In a forked child: an origin stands for a loop whose thread stayed in the parent.

    Such an origin refuses calls as a closed loop does (``RuntimeError``), so a caller that
    still holds one (a thread-local of the forking thread, an anyio token) falls back to a
    loop of this process instead of waiting forever. The origins stay registered (and
    referenced), so asking for one of those loops again finds the refusing origin, not a
    working-looking new one. A loop running in the forking thread itself runs on here.
    """
    global _last, _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    _last = None
    native = origin_from_anyio_worker()
    # An anyio worker's loop may have no origin yet: make one (held here), refused below.
    worker_origin = None if native is None else origin_of(native)
    here = _get_running_loop() or _trio_token_here()
    for origin in list(_origins.values()):
        if origin.native is here:
            continue
        origin.call_soon_threadsafe = _loop_of_the_parent
        origin.pending = False  # the parent's pending drain never runs here
        origin.items.clear()
        _parents.append(origin)
    del worker_origin


_parents: list[Origin] = []  # the refusing origins of a forked child, kept registered


def _trio_token_here() -> Any:
    try:
        return _running_trio_token("")
    except RuntimeError:
        return None


os.register_at_fork(after_in_child=_forget_loops_after_fork)


def _running_trio_token(what: str) -> Any:
    """The running trio loop's token (trio is imported only if it is already running)."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    raise RuntimeError(f"{what} must run inside a running asyncio or trio event loop")
