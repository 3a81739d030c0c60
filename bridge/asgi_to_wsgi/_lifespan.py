"""The ASGI lifespan protocol, driven from WSGI threads, once per process.

Theory of operation
-------------------
The lifespan "connection" is one long task on the shared background loop. It
receives ``lifespan.startup`` at once and ``lifespan.shutdown`` when
:meth:`Lifespan.shutdown` asks for it. Its answers travel back to the calling
thread through ``concurrent.futures.Future`` objects, which a thread can wait on
with a timeout while the loop thread resolves them.

Invariants:

* Startup runs at most once per process id; a forked child starts over with
  a fresh state dict and never waits on the parent's task.
* Every request thread waits behind the startup lock, so no request is
  dispatched before startup has finished (or failed, or timed out).
* Shutdown runs once, only in the process that ran startup, and is bounded by
  ``shutdown_timeout``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final, Literal, cast

import anyio
from asgiref.typing import ASGI3Application, LifespanScope

from bridge._http.logfields import EventLog
from bridge._loop.green import cross_thread_wait
from bridge._loop.portal import background_portal

__all__ = ("Lifespan", "LifespanMode")

LifespanMode = Literal["auto", "on", "off"]
logger: Final = logging.getLogger("bridge.asgi_to_wsgi")
log: Final = EventLog(logger, "AsgiToWsgi")

_NEW, _READY, _UNSUPPORTED, _FAILED, _STOPPED = "new", "ready", "unsupported", "failed", "stopped"
_LifespanAnswer = tuple[str, Any]  # ("complete" | "failed" | "raised" | "returned", detail)


def _resolve(future: Future[_LifespanAnswer], outcome: _LifespanAnswer) -> None:
    if not future.done():
        future.set_result(outcome)


class _Connection:
    """One lifespan task: the app's receive/send and the two outcomes."""

    def __init__(self, app: ASGI3Application, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.startup: Future[_LifespanAnswer] = Future()
        self.shutdown: Future[_LifespanAnswer] = Future()
        self.shutdown_requested: anyio.Event | None = None
        self.received = 0

    async def run(self) -> None:
        self.shutdown_requested = anyio.Event()
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self.receive, self.send)  # type: ignore[arg-type]
        except BaseException as exc:
            _resolve(self.startup, ("raised", exc))
            _resolve(self.shutdown, ("raised", exc))
            if not isinstance(exc, Exception):
                raise
        else:
            _resolve(self.startup, ("returned", None))
            _resolve(self.shutdown, ("returned", None))

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        if self.received == 1:
            return {"type": "lifespan.startup"}
        requested = self.shutdown_requested
        if requested is not None:
            await requested.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        detail = str(message.get("message", ""))
        if kind == "lifespan.startup.complete":
            _resolve(self.startup, ("complete", None))
        elif kind == "lifespan.startup.failed":
            _resolve(self.startup, ("failed", detail))
        elif kind == "lifespan.shutdown.complete":
            _resolve(self.shutdown, ("complete", None))
        elif kind == "lifespan.shutdown.failed":
            _resolve(self.shutdown, ("failed", detail))
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")


_instances: weakref.WeakSet[Lifespan] = weakref.WeakSet()


# Guards only the creation of a startup lock; never held across a wait.
_lock_creation = threading.Lock()


def _new_locks_in_child() -> None:
    # A parent thread may have held a startup lock at fork time (a request waiting
    # for startup); the child has no such thread, so it must not inherit the lock.
    global _lock_creation
    _lock_creation = threading.Lock()
    for lifespan in list(_instances):
        lifespan._lock = None


os.register_at_fork(after_in_child=_new_locks_in_child)


class Lifespan:
    """Startup once per process before the first request; shutdown once at close.

    ``ensure_started()`` returns ``None`` when requests may be dispatched, or
    ``(status, reason)`` when every request must be answered with an error.
    """

    def __init__(
        self,
        app: ASGI3Application,
        *,
        mode: LifespanMode,
        backend: str,
        startup_timeout: float,
        shutdown_timeout: float,
    ) -> None:
        self._app = app
        self._mode = mode
        self._backend = backend
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        # Made on first use in each process: a greenlet holds it while it waits for startup,
        # so under gevent it must be gevent's lock, and gunicorn's gevent worker patches
        # only after the fork (--preload builds the adapter before that).
        self._lock: threading.Lock | None = None
        self._pid = os.getpid()
        self._phase = _READY if mode == "off" else _NEW
        self._failure = ""
        self._connection: _Connection | None = None
        self._task: Future[None] | None = None
        self.state: dict[str, Any] = {}
        _instances.add(self)

    def ensure_started(self) -> tuple[int, str] | None:
        if self._pid == os.getpid() and self._phase in (_READY, _UNSUPPORTED):
            return None
        lock = self._startup_lock()
        if not lock.acquire(timeout=self._startup_timeout):
            return 503, f"lifespan startup still running after {self._startup_timeout}s"
        try:
            if self._pid != os.getpid():
                self._forget_parent()
            if self._phase == _NEW:
                with cross_thread_wait():  # under gevent: the wait yields to the hub
                    self._startup()
        finally:
            lock.release()
        if self._phase == _FAILED:
            return 500, self._failure
        if self._phase == _STOPPED:
            return 503, "the adapter was closed; lifespan shutdown has run"
        return None

    def _startup_lock(self) -> threading.Lock:
        lock = self._lock
        if lock is None:
            with _lock_creation:
                lock = self._lock
                if lock is None:
                    lock = self._lock = threading.Lock()
        return lock

    def _forget_parent(self) -> None:
        self._pid = os.getpid()
        self._phase = _READY if self._mode == "off" else _NEW
        self._connection = None
        self._task = None
        self.state = {}

    def _startup(self) -> None:
        connection = _Connection(self._app, self.state)
        portal = background_portal(self._backend)
        self._connection = connection
        self._task = portal.start_task_soon(connection.run)
        _started.add(self)  # shut down at exit even if the adapter is gone: the portal waits
        try:
            kind, detail = connection.startup.result(timeout=self._startup_timeout)
        except FutureTimeout:
            self._task.cancel()
            kind, detail = "timeout", None
        self._phase, self._failure = self._judge_startup(kind, detail)
        if self._phase == _FAILED:
            log.error("failed", None, "%s; every request will be answered with 500", self._failure)
        elif self._phase == _UNSUPPORTED:
            log.info(
                "skipped", None, "%s; running without lifespan (lifespan='auto')", self._failure
            )

    def _judge_startup(self, kind: str, detail: Any) -> tuple[str, str]:
        if kind == "complete":
            return _READY, ""
        if kind == "failed":
            return _FAILED, f"lifespan startup failed: {detail or 'no message'}"
        if kind == "timeout":
            return _FAILED, f"lifespan startup did not finish within {self._startup_timeout}s"
        if kind == "raised":
            cause = f"{type(detail).__name__}: {detail}"
            reason = f"the app raised during lifespan startup ({cause})"
        else:
            reason = "the app returned during lifespan startup without completing it"
        return (_UNSUPPORTED if self._mode == "auto" else _FAILED), reason

    def shutdown(self) -> None:
        """Run lifespan shutdown if this process ran startup; idempotent."""
        with self._startup_lock():
            if self._pid != os.getpid() or self._phase != _READY or self._connection is None:
                if self._pid == os.getpid():
                    self._phase = _STOPPED
                return
            self._phase = _STOPPED
            connection, task = self._connection, self._task
            _started.discard(self)
        with cross_thread_wait():  # under gevent: the waits yield to the hub
            kind, detail = self._shut_down(connection, task)
        self._log_shutdown(kind, detail)

    def _shut_down(self, connection: _Connection, task: Future[None] | None) -> _LifespanAnswer:
        event = connection.shutdown_requested
        if event is not None and task is not None and not task.done():
            background_portal(self._backend).call(event.set)
        try:
            return connection.shutdown.result(timeout=self._shutdown_timeout)
        except FutureTimeout:
            if task is not None:
                task.cancel()
            return "timeout", None

    def _log_shutdown(self, kind: str, detail: Any) -> None:
        if kind == "complete":
            return
        if kind == "failed":
            log.error("failed", None, "lifespan shutdown failed: %s", detail or "no message")
        elif kind == "timeout":
            log.error(
                "failed",
                None,
                "lifespan shutdown did not finish within %ss",
                self._shutdown_timeout,
            )
        elif kind == "raised":
            exc = cast(BaseException, detail)
            log.error(
                "failed",
                None,
                "the app raised during lifespan shutdown (%s: %s)",
                type(exc).__name__,
                exc,
            )


_started: set[Lifespan] = set()


def _shut_down_at_exit() -> None:
    for lifespan in list(_started):
        lifespan.shutdown()
    _started.clear()


# Registered after bridge._loop.portal's handler (imported above), so it runs first.
atexit.register(_shut_down_at_exit)
