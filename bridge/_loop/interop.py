"""The few pieces of asgiref's (and anyio's) state that bridge shares, so the libraries agree.

Django calls asgiref's ``sync_to_async`` / ``async_to_sync`` internally, so a call chain
may mix them with bridge's. To keep thread affinity across such a chain, bridge keeps its
state where asgiref looks for it:

* the executor of the innermost sync frame blocked in ``async_to_sync``
  (``asgiref.sync.AsyncToSync.executors.current``), so either library's thread-sensitive
  calls run in that thread;
* the current ``ThreadSensitiveContext`` (``asgiref.sync.SyncToAsync.thread_sensitive_context``)
  and its executor (``SyncToAsync.context_to_thread_executor``);
* the event loop a worker thread came from (``SyncToAsync.threadlocal.main_event_loop``).

anyio's worker-thread token (``anyio.from_thread.threadlocals.current_token``) is read the
same way, so ``async_to_sync`` in an ``anyio.to_thread`` worker finds its loop, and set in
bridge's workers, so ``anyio.from_thread.run`` in a bridge worker finds it too.

Invariant: every access goes through this module and degrades to bridge-only state when an
asgiref release no longer has the attribute, so a change in asgiref loses interoperation
but never breaks bridge.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import weakref
from concurrent.futures import Executor
from typing import Any, Final

try:
    from asgiref import sync as _asgiref_sync
except ImportError:  # pragma: no cover - asgiref is a runtime dependency
    _asgiref_sync = None  # type: ignore[assignment]

try:
    from asgiref.local import _Storage
except ImportError:  # pragma: no cover - asgiref < 3.10 has no thread-tagged storage
    _Storage = None  # type: ignore[assignment,misc]

__all__ = (
    "adopt_context",
    "anyio_token_for",
    "async_library_var",
    "current_frame",
    "current_thread_sensitive_context",
    "enter_anyio_worker",
    "executor_for_context",
    "forget_context_executor",
    "inside_thread",
    "leave_anyio_worker",
    "loop_frame",
    "merge_context",
    "origin_from_anyio_worker",
    "origin_loop_from_asgiref",
    "restore_asgiref_origin",
    "set_asgiref_origin",
    "set_current_frame",
    "thread_sensitive_context_var",
)


class _Namespace:
    """Stand-in for ``asgiref.local.Local`` when asgiref lacks it: a context-local namespace."""

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "bridge.frame", default=None
        )

    @property
    def current(self) -> Any:
        return self._var.get()

    @current.setter
    def current(self, value: Any) -> None:
        self._var.set(value)


_a2s: Any = getattr(_asgiref_sync, "AsyncToSync", None)
_s2a: Any = getattr(_asgiref_sync, "SyncToAsync", None)


def _shared(owner: Any, name: str, fallback: Any) -> Any:
    # Never ``getattr(...) or fallback``: an empty registry is falsy but must be shared.
    value = getattr(owner, name, None)
    return fallback if value is None else value


_executors: Any = _shared(_a2s, "executors", _Namespace())
_loop_executors: dict[Any, Any] = _shared(_a2s, "loop_thread_executors", {})
_context_var: contextvars.ContextVar[Any] = _shared(
    _s2a, "thread_sensitive_context", contextvars.ContextVar("bridge.thread_sensitive_context")
)
_context_executors: weakref.WeakKeyDictionary[Any, Executor] = _shared(
    _s2a, "context_to_thread_executor", weakref.WeakKeyDictionary()
)
_asgiref_threadlocal: Any = _shared(_s2a, "threadlocal", threading.local())
_context_lock: Final = threading.Lock()

thread_sensitive_context_var = _context_var


def _local_variable(local: Any) -> contextvars.ContextVar[Any] | None:
    """The ContextVar behind an asgiref ``Local`` of the layout this module knows, else None.

    Reading it directly skips ``Local``'s lock and its AttributeError round trip (~2 us
    a call, paid on every thread-sensitive call); the visibility rule is asgiref's own.
    """
    if _Storage is None:
        return None
    try:
        variable = object.__getattribute__(object.__getattribute__(local, "_storage"), "_data")
    except AttributeError:
        return None
    return variable if isinstance(variable, contextvars.ContextVar) else None


_frame_variable = _local_variable(_executors)


def current_frame() -> Any:
    """The executor of the innermost blocked sync frame visible from here, or None."""
    if _frame_variable is None:
        return getattr(_executors, "current", None)
    storage = _frame_variable.get(None)
    if storage is None or storage.thread_id != threading.get_ident():
        return None  # asgiref's rule: data of another thread is not visible here
    return storage.data.get("current")


def set_current_frame(frame: Any) -> Any:
    """Make ``frame`` the current sync frame; return the previous one for restoring."""
    if _frame_variable is None:
        previous = getattr(_executors, "current", None)
        _executors.current = frame
        return previous
    ident = threading.get_ident()
    storage = _frame_variable.get(None)
    data = {} if storage is None or storage.thread_id != ident else storage.data
    _frame_variable.set(_Storage(ident, {**data, "current": frame}))
    return data.get("current")


def loop_frame(loop: asyncio.AbstractEventLoop) -> Any:
    """The frame asgiref registered for a loop it started itself (``force_new_loop``-style)."""
    return _loop_executors.get(loop)


def current_thread_sensitive_context() -> Any:
    return _context_var.get(None)


def executor_for_context(context: Any, factory: Any) -> Executor:
    """The one executor of ``context``, created by ``factory()`` unless asgiref made one."""
    executor = _context_executors.get(context)
    if executor is not None:
        return executor
    with _context_lock:
        executor = _context_executors.get(context)
        if executor is None:
            executor = factory()
            _context_executors[context] = executor
    return executor


def forget_context_executor(context: Any) -> Executor | None:
    return _context_executors.pop(context, None)


def origin_loop_from_asgiref() -> asyncio.AbstractEventLoop | None:
    """The running loop that asgiref's ``sync_to_async`` worker thread came from, if any."""
    loop: asyncio.AbstractEventLoop | None = getattr(_asgiref_threadlocal, "main_event_loop", None)
    if loop is None or getattr(_asgiref_threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    if loop.is_closed() or not loop.is_running():
        return None
    return loop


def _anyio_threadlocals() -> Any:
    try:
        from anyio._core._eventloop import threadlocals
    except ImportError:  # pragma: no cover - a future anyio may move it
        return None
    return threadlocals


_anyio_local = _anyio_threadlocals()


def origin_from_anyio_worker() -> Any:
    """The loop (asyncio) or trio token an ``anyio.to_thread`` worker thread came from, if any.

    So ``async_to_sync`` inside ``anyio.to_thread.run_sync`` (Starlette's threadpool,
    FastAPI's sync endpoints) runs on the caller's loop, as ``anyio.from_thread`` would.
    """
    token = getattr(_anyio_local, "current_token", None)
    return getattr(token, "native_token", None)


def anyio_token_for(native: Any) -> Any:
    """anyio's token for the loop (or trio token) ``native`` when this thread runs it, else None.

    None also on anyio < 4.11, which has no tokens.
    """
    if _anyio_local is None:
        return None
    try:
        from anyio.lowlevel import current_token
    except ImportError:  # pragma: no cover - anyio < 4.11
        return None
    try:
        token = current_token()
    except Exception:  # no async library runs here (a plain thread, a bare loop callback)
        return None
    return token if getattr(token, "native_token", None) is native else None


def _trio_thread_data() -> Any:
    """trio's thread-local of its worker threads (``trio.from_thread`` reads its token)."""
    threads = sys.modules.get("trio._threads")  # trio runs, so it has been imported
    return getattr(threads, "PARENT_TASK_DATA", None)


def enter_anyio_worker(token: Any) -> Any:
    """In a worker thread: let ``anyio.from_thread`` reach ``token``'s loop; return the old.

    ``token`` is an :attr:`bridge._loop.origin.Origin.anyio_token` (None: nothing to do).

    On trio, anyio's ``from_thread.run`` without ``token=`` asks trio's own thread-local,
    which only trio's threads carry; it gets the token too (and ``abandon_on_cancel``, so
    trio runs the coroutine in its system nursery, as anyio does on asyncio).
    """
    previous = getattr(_anyio_local, "current_token", None)
    if token is not None:
        _anyio_local.current_token = token
        native = token.native_token
        if not isinstance(native, asyncio.AbstractEventLoop):
            data = _trio_thread_data()
            if data is not None and not hasattr(data, "token"):
                data.token, data.abandon_on_cancel = native, True
                return (previous, data)
    return previous


def leave_anyio_worker(previous: Any) -> None:
    if type(previous) is tuple:  # enter_anyio_worker set trio's thread-local
        previous, data = previous
        del data.token, data.abandon_on_cancel
    if previous is not None:
        _anyio_local.current_token = previous
    elif _anyio_local is not None and hasattr(_anyio_local, "current_token"):
        del _anyio_local.current_token


def set_asgiref_origin(loop: asyncio.AbstractEventLoop | None) -> tuple[Any, Any]:
    """Tell asgiref's ``async_to_sync`` in this thread which loop to use; return the old value."""
    local = _asgiref_threadlocal
    previous = (
        getattr(local, "main_event_loop", None),
        getattr(local, "main_event_loop_pid", None),
    )
    local.main_event_loop = loop
    local.main_event_loop_pid = os.getpid() if loop is not None else None
    return previous


def restore_asgiref_origin(previous: tuple[Any, Any]) -> None:
    _asgiref_threadlocal.main_event_loop, _asgiref_threadlocal.main_event_loop_pid = previous


def adopt_context(context: contextvars.Context) -> None:
    """Inside ``context.run`` on a new thread: re-home asgiref ``Local`` data to this thread.

    asgiref tags non-thread-critical ``Local`` data with its owning thread and hides it
    from other threads unless a bridge crossing moves it deliberately; this is that move.
    """
    if _Storage is None:
        return
    ident = threading.get_ident()
    for var, value in context.items():
        if type(value) is _Storage and value.thread_id != ident:
            var.set(_Storage(ident, value.data))


# The thread-sensitive thread whose call a context was copied for. A task that inherits it
# and asks that same thread for a call would wait on a thread that waits on it.
inside_thread: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "bridge.inside_thread", default=None
)


def _sniffio_library_var() -> contextvars.ContextVar[Any] | None:
    try:
        import sniffio
    except ImportError:  # pragma: no cover - anyio may come without sniffio
        return None
    return sniffio.current_async_library_cvar


#: sniffio's "which async library runs this task" (anyio.run sets it), or None without
#: sniffio. It describes the loop a context runs on, so it never crosses to another loop or
#: back: :func:`merge_context` skips it, and ``async_to_sync`` clears it (inline, per call)
#: in the context its coroutine runs in, so that loop's library says.
async_library_var = _sniffio_library_var()


def merge_context(context: contextvars.Context) -> None:
    """Copy the values of ``context`` into the current context (changes flow back)."""
    ident = threading.get_ident()
    for var, value in context.items():
        if var is inside_thread or var is async_library_var:
            continue  # they describe the callee's side only
        if _Storage is not None and type(value) is _Storage and value.thread_id != ident:
            value = _Storage(ident, value.data)
        elif var.get(_UNSET) is value:
            continue
        var.set(value)


_UNSET: Final[Any] = object()
