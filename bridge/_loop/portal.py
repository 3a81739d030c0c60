"""The process-wide background event loop used by sync callers.

``AsgiToWsgi`` and ``async_to_sync`` (from a plain thread) both need an event
loop that outlives any one call. There is one per backend (``"asyncio"``,
``"asyncio+uvloop"``, ``"trio"``), started lazily on first use in a daemon
thread, shared by every caller in the process.

Invariants:

* After ``os.fork()`` the child never touches the parent's loop: the registry
  is cleared in the child, and the next caller starts a fresh loop.
* :func:`shutdown_background_portals` (also run at interpreter exit) stops
  every loop thread; it never waits on a loop that belongs to another process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from contextlib import AbstractContextManager
from typing import Any, Final

from anyio.from_thread import BlockingPortal

from bridge._loop import green
from bridge._loop.origin import Origin, current_origin

__all__ = (
    "backend_options",
    "background_origin",
    "background_portal",
    "shutdown_background_portals",
)

_BACKENDS: Final = {
    "asyncio": ("asyncio", {}),
    "asyncio+uvloop": ("asyncio", {"use_uvloop": True}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}

_lock = threading.Lock()
_portals: dict[str, tuple[BlockingPortal, AbstractContextManager[BlockingPortal]]] = {}
_owner_pid = os.getpid()
# The background loop as callers in other threads reach it. Cleared with _portals.
_origins: dict[str, Origin] = {}
_inherited: list[object] = []  # what a forked child inherited from its parent, never touched


def backend_options(backend: str) -> tuple[str, dict[str, Any]]:
    """``(anyio backend name, backend options)`` for one of the accepted backend names."""
    return _check_backend(backend)


def _check_backend(backend: str) -> tuple[str, dict[str, Any]]:
    try:
        return _BACKENDS[backend]
    except KeyError:
        choices = ", ".join(repr(name) for name in _BACKENDS)
        raise ValueError(f"unknown event loop backend {backend!r}; use one of {choices}") from None


def background_portal(backend: str = "asyncio") -> BlockingPortal:
    """The shared portal for ``backend``, started on first use in this process."""
    entry = _portals.get(backend)
    if entry is not None and _owner_pid == os.getpid():
        return entry[0]
    name, options = _check_backend(backend)
    with _lock:
        _forget_if_forked()
        entry = _portals.get(backend)
        if entry is None:
            manager = green.start_blocking_portal(name, options)  # an OS thread under gevent
            entry = (manager.__enter__(), manager)
            _portals[backend] = entry
        return entry[0]


def background_origin(backend: str = "asyncio") -> Origin:
    """The background loop of ``backend`` as an :class:`~bridge._loop.origin.Origin`.

    This is the fast path for per-call work from plain threads: unlike
    ``BlockingPortal.call`` it allocates no futures or portal tasks.
    """
    origin = _origins.get(backend)
    if origin is not None and _owner_pid == os.getpid():
        return origin
    portal = background_portal(backend)
    with green.cross_thread_wait():
        origin = portal.call(current_origin, "the background loop")
    with _lock:
        _origins[backend] = origin
    return origin


def _forget_if_forked() -> None:
    global _owner_pid
    if _owner_pid != os.getpid():
        # The loop threads did not survive the fork; their objects are inert here and must
        # stay referenced: finalising a portal's context manager would wait forever for the
        # dead loop thread, and a dropped loop object warns that it was never closed.
        _inherited.append((dict(_portals), dict(_origins)))
        _portals.clear()
        _origins.clear()
        _owner_pid = os.getpid()


def shutdown_background_portals() -> None:
    """Stop every background loop this process started. Safe to call twice.

    Tasks still running on a loop (work an app left behind, a lifespan that was
    never closed) are cancelled rather than waited for: shutdown, and with it
    interpreter exit, must never hang on them.
    """
    with _lock:
        _forget_if_forked()
        entries = list(_portals.values())
        _portals.clear()
        _origins.clear()
    for portal, manager in entries:
        with contextlib.suppress(RuntimeError), green.cross_thread_wait():  # already stopped
            portal.call(portal.stop, True)
        manager.__exit__(None, None, None)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it at fork time
    _forget_if_forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown_background_portals)
