"""The process-wide background event loop used by sync callers.

``AsgiToWsgi`` and ``async_to_sync`` (from a plain thread) both need an event
loop that outlives any one call. There is one per backend (``"asyncio"``,
``"asyncio+uvloop"``, ``"trio"``), started lazily on first use in a daemon
thread, shared by every caller in the process.

Fork safety. A forked child has only the thread that called ``fork()``; the loop
threads stay in the parent. Everything a loop owns (its anyio ``BlockingPortal``,
its origin, the adapters' handles and tasks, see :func:`keep_with_loop`) is
referenced from the loop thread's own frame, and CPython never finalises the frames
of threads that did not survive a fork. So the child drops the registry without
finalising anything of the parent's: no parent generator, task or portal runs its
cleanup code in the child (which would print ``Exception ignored in ...`` at the
child's exit, or wait forever for a loop that does not exist there). Before a fork
the parent parks each of its loop threads in a known idle state (blocked on a lock,
holding nothing else) for the instant of the fork, where the loop can be reached
within :data:`_PARK_TIMEOUT` seconds; the loops resume in the parent right after.

Invariants:

* After ``os.fork()`` the child never touches the parent's loop: the registry
  is cleared in the child, and the next caller starts a fresh loop.
* :func:`shutdown_background_portals` (also run at interpreter exit) stops
  every loop thread; it never waits on a loop that belongs to another process.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import threading
from _queue import SimpleQueue
from typing import Any, Final

import anyio
from anyio.from_thread import BlockingPortal

from bridge._loop import green
from bridge._loop.origin import Origin, current_origin

__all__ = (
    "backend_options",
    "background_origin",
    "background_portal",
    "keep_with_loop",
    "shutdown_background_portals",
)

_BACKENDS: Final = {
    "asyncio": ("asyncio", {}),
    "asyncio+uvloop": ("asyncio", {"use_uvloop": True}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
_PARK_TIMEOUT: Final = 1.0  # seconds a fork waits for a busy loop to reach the park


class _Loop:
    """One running background loop: its thread, its portal, its origin, what it keeps."""

    __slots__ = ("keep", "origin", "portal", "thread")

    def __init__(
        self, thread: green.OsThread, portal: BlockingPortal, origin: Origin, keep: list[object]
    ) -> None:
        self.thread = thread
        self.portal = portal
        self.origin = origin
        self.keep = keep  # referenced by the loop thread's frame too (module docstring)


_lock = threading.Lock()
_loops: dict[str, _Loop] = {}
_owner_pid = os.getpid()


def backend_options(backend: str) -> tuple[str, dict[str, Any]]:
    """``(anyio backend name, backend options)`` for one of the accepted backend names."""
    return _check_backend(backend)


def _check_backend(backend: str) -> tuple[str, dict[str, Any]]:
    try:
        return _BACKENDS[backend]
    except KeyError:
        choices = ", ".join(repr(name) for name in _BACKENDS)
        raise ValueError(f"unknown event loop backend {backend!r}; use one of {choices}") from None


def _loop_for(backend: str) -> _Loop:
    loop = _loops.get(backend)
    if loop is not None and _owner_pid == os.getpid():
        return loop
    name, options = _check_backend(backend)
    with _lock:
        _forget_if_forked()
        loop = _loops.get(backend)
        if loop is None:
            loop = _loops[backend] = _start(backend, name, options)
        return loop


def background_portal(backend: str = "asyncio") -> BlockingPortal:
    """The shared portal for ``backend``, started on first use in this process."""
    return _loop_for(backend).portal


def background_origin(backend: str = "asyncio") -> Origin:
    """The background loop of ``backend`` as an :class:`~bridge._loop.origin.Origin`.

    This is the fast path for per-call work from plain threads: unlike
    ``BlockingPortal.call`` it allocates no futures or portal tasks.
    """
    return _loop_for(backend).origin


def keep_with_loop(backend: str, owned: object) -> None:
    """Keep ``owned`` (tasks, handles of the loop of ``backend``) exactly as long as the loop.

    A forked child then never finalises it (module docstring).
    """
    _loop_for(backend).keep.append(owned)


_Started = tuple[BlockingPortal, Origin] | BaseException


def _start(backend: str, name: str, options: dict[str, Any]) -> _Loop:
    green.check_backend(name, options)
    # A plain queue, waited on without yielding even by a greenlet: the caller holds _lock,
    # which predates gevent's patching under --preload (a real lock), and a greenlet that
    # yielded while holding it would stall every other greenlet that wants it. Starting a
    # loop takes moments and needs nothing from this thread.
    started: SimpleQueue[_Started] = SimpleQueue()
    keep: list[object] = []
    run = functools.partial(_run_loop_thread, name, options, started, keep)
    thread = green.start_thread(run, f"bridge-loop-{backend}")  # an OS thread under gevent
    outcome = started.get()
    if isinstance(outcome, BaseException):
        raise outcome
    portal, origin = outcome
    keep.append(origin)
    return _Loop(thread, portal, origin, keep)


def _run_loop_thread(
    name: str, options: dict[str, Any], started: SimpleQueue[_Started], keep: list[object]
) -> None:
    # ``keep`` stays referenced from this frame for the life of the loop (fork safety).
    async def serve() -> None:
        async with BlockingPortal() as portal:
            keep.append(portal)
            started.put((portal, current_origin("the background loop")))
            await portal.sleep_until_stopped()

    try:
        anyio.run(serve, backend=name, backend_options=options)
    except BaseException as error:
        if keep:  # the portal was handed over
            raise
        started.put(error)  # the caller that started the loop raises it


def _forget_if_forked() -> None:
    global _owner_pid
    if _owner_pid != os.getpid():
        # The loop threads did not survive the fork. Their frames keep what the loops own,
        # unfinalised; dropping the registry's references finalises nothing of the parent's.
        _loops.clear()
        _owner_pid = os.getpid()


def shutdown_background_portals() -> None:
    """Stop every background loop this process started. Safe to call twice.

    Tasks still running on a loop (work an app left behind, a lifespan that was
    never closed) are cancelled rather than waited for: shutdown, and with it
    interpreter exit, must never hang on them.
    """
    with _lock:
        _forget_if_forked()
        loops = list(_loops.values())
        _loops.clear()
    for loop in loops:
        with contextlib.suppress(RuntimeError), green.cross_thread_wait():  # already stopped
            loop.portal.call(loop.portal.stop, True)
        if not loop.thread.is_current():
            loop.thread.join()


class _Park:
    """The parent's loop threads, parked on a lock for the instant of a fork."""

    def __init__(self) -> None:
        self.resume = threading.Event()
        self.parked: list[threading.Event] = []

    def park(self, loop: _Loop) -> None:
        if loop.thread.is_current():
            return  # the fork is made on the loop itself
        arrived = threading.Event()
        try:
            loop.origin.call_soon_threadsafe(self._hold, arrived)
        except RuntimeError:  # the loop is stopping
            return
        if arrived.wait(_PARK_TIMEOUT):
            self.parked.append(arrived)

    def _hold(self, arrived: threading.Event) -> None:
        arrived.set()
        self.resume.wait()  # on the loop thread: the fork happens while it waits here


_parked: _Park | None = None


def _before_fork() -> None:
    global _parked
    if _owner_pid != os.getpid() or not _loops:
        return
    _parked = _Park()
    for loop in list(_loops.values()):
        _parked.park(loop)


def _after_fork_in_parent() -> None:
    global _parked
    if _parked is not None:
        _parked.resume.set()
        _parked = None


def _after_fork_in_child() -> None:
    global _lock, _parked
    _lock = threading.Lock()  # the parent may have held it at fork time
    _parked = None  # the parked threads stayed in the parent
    _forget_if_forked()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(shutdown_background_portals)
