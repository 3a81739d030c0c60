"""Call sync code from async code and back: asgiref's semantics, on asyncio and trio.

``sync_to_async`` and ``async_to_sync`` take the same arguments as ``asgiref.sync`` so
migrating is an import change; see ``docs/threads.md`` for what runs where.
"""

from __future__ import annotations

import asyncio.coroutines
import contextvars
import functools
import inspect
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from concurrent.futures import Executor
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import anyio

from bridge._loop import portal as _portal
from bridge._loop.blocking import call_async
from bridge._loop.crossing import call_sync
from bridge._loop.interop import forget_context_executor, thread_sensitive_context_var
from bridge._loop.streams import AsyncIteratorInThread, SyncIteratorOverAsync

__all__ = (
    "ThreadSensitiveContext",
    "async_to_sync",
    "iterate_in_loop",
    "iterate_in_thread",
    "sync_to_async",
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _is_async_callable(func: object) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    marker = getattr(asyncio.coroutines, "_is_coroutine", None)  # Python < 3.12 marker
    if marker is not None and getattr(func, "_is_coroutine", None) is marker:
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - callable objects count too
    return call is not None and call is not func and inspect.iscoroutinefunction(call)


@overload
def sync_to_async(
    func: Callable[P, R],
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
    limiter: anyio.CapacityLimiter | None = None,
    context: contextvars.Context | None = None,
    wait_on_cancel: bool = False,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
    limiter: anyio.CapacityLimiter | None = None,
    context: contextvars.Context | None = None,
    wait_on_cancel: bool = False,
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def sync_to_async(
    func: Callable[P, R] | None = None,
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
    limiter: anyio.CapacityLimiter | None = None,
    context: contextvars.Context | None = None,
    wait_on_cancel: bool = False,
) -> Any:
    """Turn a sync callable into a coroutine function that runs it in a thread.

    Usable as ``sync_to_async(func)``, ``@sync_to_async`` and
    ``@sync_to_async(thread_sensitive=False)``; the wrapper keeps ``func``'s signature.

    :param thread_sensitive: ``True`` (default) runs every call from one outermost
        context in one thread: the sync thread blocked in an enclosing ``async_to_sync``
        if there is one, else the thread of the enclosing :class:`ThreadSensitiveContext`,
        else one process-wide thread. ``False`` runs calls concurrently in worker threads.
    :param executor: ``thread_sensitive=False`` only: run calls with this
        ``concurrent.futures.Executor`` instead of bridge's worker threads.
    :param limiter: ``thread_sensitive=False`` only: the ``anyio.CapacityLimiter`` that
        bounds concurrent calls (default: anyio's default thread limiter, 40 tokens).
    :param context: run in this ``contextvars.Context`` and do not copy changes back
        (default: a copy of the caller's context, whose changes are copied back).
    :param wait_on_cancel: ``False`` (default, asgiref's behaviour): a cancelled awaiting
        task raises the cancellation at once while the function runs to its end in its
        thread (a thread cannot be stopped; later thread-sensitive calls still run after
        it). ``True``: the task keeps waiting for the function, shielded from further
        cancellation, then raises the cancellation.

    Context variables flow to the thread and back; ``sys.exc_info()`` in the callee is the
    caller's; exceptions propagate with their traceback. If the function waits in
    ``async_to_sync`` for a coroutine on the caller's loop when the awaiting task is
    cancelled, that coroutine is cancelled first, as in asgiref (see docs/threads.md,
    "Cancellation"). Works under asyncio and trio.

    The wrapper of a bound method has the method's ``__self__``, as asgiref's has.

    .. versionadded:: 0.1
    """
    if thread_sensitive and (executor is not None or limiter is not None):
        raise TypeError(
            "executor and limiter apply only to thread_sensitive=False; "
            "pass thread_sensitive=False or drop them"
        )
    wrap = functools.partial(
        _wrap_sync,
        thread_sensitive=thread_sensitive,
        executor=executor,
        limiter=limiter,
        context=context,
        wait_on_cancel=wait_on_cancel,
    )
    return wrap if func is None else wrap(func)


def _wrap_sync(
    func: Callable[P, R],
    *,
    thread_sensitive: bool,
    executor: Executor | None,
    limiter: anyio.CapacityLimiter | None,
    context: contextvars.Context | None,
    wait_on_cancel: bool,
) -> Callable[P, Coroutine[Any, Any, R]]:
    if not callable(func) or _is_async_callable(func):
        raise TypeError(f"sync_to_async() wraps sync callables only, not {func!r}")

    @functools.wraps(func)
    async def run_in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await call_sync(
            func,
            args,
            kwargs,
            thread_sensitive=thread_sensitive,
            executor=executor,
            limiter=limiter,
            context=context,
            wait_on_cancel=wait_on_cancel,
        )
        return result

    _keep_bound_self(run_in_thread, func)
    return run_in_thread


def _keep_bound_self(wrapper: Callable[..., Any], func: object) -> None:
    """A wrapper of a bound method has its ``__self__``, as asgiref's wrappers do.

    Django's handler reads ``middleware_method.__self__`` of the wrapped middleware hooks.
    """
    try:
        bound_to = func.__self__  # type: ignore[attr-defined]
    except AttributeError:
        return
    wrapper.__self__ = bound_to  # type: ignore[attr-defined]


@overload
def async_to_sync(
    awaitable: Callable[P, Awaitable[R]],
    *,
    force_new_loop: bool = False,
    backend: str = "asyncio",
) -> Callable[P, R]: ...


@overload
def async_to_sync(
    *, force_new_loop: bool = False, backend: str = "asyncio"
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, R]]: ...


def async_to_sync(
    awaitable: Callable[P, Awaitable[R]] | None = None,
    *,
    force_new_loop: bool = False,
    backend: str = "asyncio",
) -> Any:
    """Turn a coroutine function into a sync callable that blocks until it finishes.

    Usable as ``async_to_sync(fn)``, ``@async_to_sync`` and ``@async_to_sync(...)``.
    From a thread running a ``sync_to_async`` call (bridge's or asgiref's) or an
    ``anyio.to_thread.run_sync`` call, the coroutine runs on that call's loop; from any
    other thread it runs on one persistent background loop per backend, started on first
    use. While it runs, thread-sensitive ``sync_to_async`` calls made by the coroutine run
    back in this thread.

    :param force_new_loop: run on a new event loop in a new thread for this call
        (default ``False``).
    :param backend: the background loop for calls from plain threads: ``"asyncio"``
        (default), ``"asyncio+uvloop"`` or ``"trio"``.
    :raises RuntimeError: when called from a thread whose event loop is running.

    The wrapper of a bound method has the method's ``__self__``, as asgiref's has.

    .. versionadded:: 0.1
    """
    _portal.backend_options(backend)  # an unknown backend fails here, not at call time
    if awaitable is None:
        return functools.partial(_wrap_async, force_new_loop=force_new_loop, backend=backend)
    return _wrap_async(awaitable, force_new_loop=force_new_loop, backend=backend)


def _wrap_async(
    fn: Callable[P, Awaitable[R]], *, force_new_loop: bool, backend: str
) -> Callable[P, R]:
    if inspect.iscoroutine(fn) or not callable(fn):
        raise TypeError(
            f"async_to_sync() wraps a coroutine function, not {fn!r}; pass the function "
            "itself, e.g. async_to_sync(fetch)(url) rather than async_to_sync(fetch(url))"
        )

    @functools.wraps(fn)
    def run_blocking(*args: P.args, **kwargs: P.kwargs) -> R:
        result: R = call_async(fn, args, kwargs, force_new_loop=force_new_loop, backend=backend)
        return result

    _keep_bound_self(run_blocking, fn)
    return run_blocking


class ThreadSensitiveContext:
    """``async with ThreadSensitiveContext():`` gives the block its own sync thread.

    Thread-sensitive ``sync_to_async`` calls made inside the block (by bridge or by
    asgiref, e.g. Django's ORM) run in one thread dedicated to it, instead of the
    process-wide one, so concurrent requests do not queue behind each other. Only the
    outermost context takes effect; the thread stops when the block exits. Works under
    asyncio and trio, and is the same scope as ``asgiref.sync.ThreadSensitiveContext``.

    .. versionadded:: 0.1
    """

    _exited = False  # read by asgiref's sync_to_async
    _finished = False  # read by bridge: set once the block has exited

    def __init__(self) -> None:
        self._token: contextvars.Token[Any] | None = None

    async def __aenter__(self) -> ThreadSensitiveContext:
        if thread_sensitive_context_var.get(None) is None:
            self._token = thread_sensitive_context_var.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is None:
            return
        executor = forget_context_executor(self)
        thread_sensitive_context_var.reset(self._token)
        self._token = None
        self._finished = True  # tasks that outlive the block use the process-wide thread
        if executor is not None:
            executor.shutdown(wait=False)  # finishes what is queued, never blocks the loop


def iterate_in_thread(
    iterable: Iterable[T],
    *,
    buffer_size: int = 1,
    limiter: anyio.CapacityLimiter | None = None,
) -> AsyncIteratorInThread[T]:
    """Iterate a sync iterable in a worker thread: ``async for item in iterate_in_thread(it)``.

    One worker thread pulls items ahead of the consumer into a buffer of at most
    ``buffer_size`` items (default 1), so a slow consumer never makes memory grow.
    ``await iterator.aclose()`` (or leaving ``async with contextlib.aclosing(...)``)
    stops the producer and calls the iterable's ``close()`` in that thread, as PEP 3333
    requires for WSGI bodies.

    :param limiter: the ``anyio.CapacityLimiter`` the worker thread counts against
        (default: anyio's default thread limiter).

    .. versionadded:: 0.1
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1, got {buffer_size!r}")
    return AsyncIteratorInThread(iter(iterable), iterable, buffer_size, limiter)


def iterate_in_loop(
    aiterable: AsyncIterable[T], *, backend: str = "asyncio"
) -> SyncIteratorOverAsync[T]:
    """Iterate an async iterable from sync code: ``for item in iterate_in_loop(agen)``.

    Each step runs like ``async_to_sync``: on the loop of the enclosing ``sync_to_async``
    call if there is one, else on the persistent background loop of ``backend``.
    Closing the iterator (or exhausting it) calls the async iterator's ``aclose()``.

    .. versionadded:: 0.1
    """
    _portal.backend_options(backend)
    return SyncIteratorOverAsync(aiterable, backend)
