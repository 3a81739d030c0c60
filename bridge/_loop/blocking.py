"""The blocking crossing behind ``bridge.async_to_sync``: a sync thread waits for a coroutine.

The calling thread becomes a :class:`~bridge._loop.threads.SyncFrame`: it starts the coroutine
on the right loop, then runs the thread-sensitive calls the coroutine sends back to it
until the coroutine finishes, and returns its outcome.

Where the coroutine runs: a new loop in a new thread if ``force_new_loop``; else the loop
this thread is serving a call for (bridge's ``sync_to_async``, ``anyio.to_thread`` or
asgiref's ``sync_to_async``); else the persistent background loop of ``bridge._loop.portal``.

Invariants: the frame is current (for both bridge and asgiref) exactly while the thread
waits; the coroutine's contextvars are merged back into the caller on every outcome; a
loop that fails to start releases the waiting thread with its error. The driver coroutine
is primed (sent to once in the calling thread): it has entered its ``try`` before any loop
sees it, so a task cancelled before its first step (a loop shutting down cancels every
task) still finishes the frame, with no done-callback on the loop per call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import types
from collections.abc import Callable, Generator
from typing import Any

from bridge._loop import green
from bridge._loop import portal as _portal
from bridge._loop.interop import (
    adopt_context,
    async_library_var,
    current_frame,
    merge_context,
    origin_from_anyio_worker,
    origin_loop_from_asgiref,
    set_current_frame,
)
from bridge._loop.origin import await_started, origin_of, wake_waiter
from bridge._loop.threads import SyncFrame, served_call, served_origin

__all__ = ("call_async", "refuse_in_loop_thread")

_get_running_loop = asyncio._get_running_loop


def _sniffio_thread_local() -> Any:
    try:
        import sniffio
    except ImportError:  # pragma: no cover - anyio may come without sniffio
        return None
    return sniffio.thread_local


_sniffio_local: Any = _sniffio_thread_local()


def refuse_in_loop_thread() -> None:
    loop = _get_running_loop()
    if (loop is not None and not green.off_the_loop_greenlet(loop)) or _in_trio_thread():
        raise RuntimeError(
            "async_to_sync() cannot run in a thread whose event loop is running (it would "
            "block that loop); await the coroutine function directly instead"
        )


def _in_trio_thread() -> bool:
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    if _sniffio_local is not None:  # trio names itself in sniffio's thread-local while it runs
        return getattr(_sniffio_local, "name", None) == "trio"
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def call_async(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    force_new_loop: bool,
    backend: str,
) -> Any:
    refuse_in_loop_thread()
    frame = SyncFrame(current_frame())
    previous = set_current_frame(frame)
    try:
        context = contextvars.copy_context()
        if async_library_var is not None and context.get(async_library_var) is not None:
            context.run(async_library_var.set, None)  # the coroutine's loop names its own
        driver = _drive(fn, args, kwargs, frame, sys.exc_info()[1])
        driver.send(None)  # primed: now awaiting _first_step()
        loop_thread = None
        if force_new_loop:
            loop_thread = _start_new_loop(driver, context, backend, frame)
        else:
            _start_on_origin(driver, context, frame, backend)
        frame.run_until_finished()
        if loop_thread is not None:
            loop_thread.join()
    finally:
        if frame.final_context is not None:
            merge_context(frame.final_context)
        set_current_frame(previous)
    return frame.outcome()


@types.coroutine
def _first_step() -> Generator[None, None, None]:
    """Yields once, to :func:`call_async`, which primes the driver; the loop's first step
    resumes after it."""
    yield


async def _drive(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    frame: SyncFrame,
    exc: BaseException | None,
) -> None:
    try:
        await _first_step()
    except GeneratorExit:
        raise  # closed before it reached a loop: nobody waits for it
    except BaseException:  # its task was cancelled before its first step
        frame.finish(None, asyncio.CancelledError("the event loop cancelled the task"), None)
        return
    result: Any = None
    error: BaseException | None = None
    adopt_context(contextvars.copy_context())
    call = frame.call
    if call is not None:  # the caller of that call may cancel this coroutine from now on
        below, call.inner = call.inner, frame
    try:
        if call is not None and _get_running_loop() is None:  # trio: cancelled by scope
            with sys.modules["trio"].CancelScope() as frame.cancel_scope:
                result = await _call(fn, args, kwargs, exc)
            if frame.cancel_scope.cancelled_caught:  # the scope absorbed trio's Cancelled
                raise asyncio.CancelledError("the caller of sync_to_async was cancelled")
        elif exc is None:
            result = await fn(*args, **kwargs)
        else:
            result = await _call(fn, args, kwargs, exc)
    except BaseException as raised:
        error = raised
        frame.cancelled = _is_cancellation(raised)
    if call is not None:
        call.inner = below
    frame.finish(result, error, contextvars.copy_context())
    if frame.watcher is not None:
        wake_waiter(frame.watcher)


async def _call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException | None
) -> Any:
    if exc is None:
        return await fn(*args, **kwargs)
    traceback = exc.__traceback__
    try:
        raise exc
    except BaseException:
        return await fn(*args, **kwargs)
    finally:
        exc.__traceback__ = traceback


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, asyncio.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(error, trio.Cancelled)


def _start_on_origin(driver: Any, context: Any, frame: SyncFrame, backend: str) -> None:
    # The loop this thread works for: bridge's, anyio's or asgiref's worker thread.
    origin = served_origin()
    if origin is None:
        native = origin_from_anyio_worker() or origin_loop_from_asgiref()
        if native is not None:
            origin = origin_of(native)
    if origin is not None:
        call = served_call()
        if call is not None and call.origin is origin:
            frame.call = call
        try:
            origin.start_task_soon(driver, context, frame)
            return
        except RuntimeError:
            frame.call = None  # that loop has closed since: fall back to the background loop
    try:
        _portal.background_origin(backend).start_task_soon(driver, context, frame)
    except BaseException:
        driver.close()
        raise


def _start_new_loop(
    driver: Any, context: contextvars.Context, backend: str, frame: SyncFrame
) -> green.OsThread:
    name, options = _portal.backend_options(backend)
    try:
        green.check_backend(name, options)
    except RuntimeError:
        driver.close()
        raise
    run = functools.partial(_run_new_loop, driver, context, name, options, frame)
    return green.start_thread(run, "bridge-new-loop")  # an OS thread under gevent


def _run_new_loop(
    driver: Any, context: contextvars.Context, name: str, options: dict[str, Any], frame: SyncFrame
) -> None:
    try:
        _run_loop(driver, context, name, options)
    except BaseException as error:
        if not frame.finished:  # the loop failed before the coroutine ran: release the caller
            driver.close()
            frame.finish(None, error, None)


def _run_loop(
    driver: Any, context: contextvars.Context, name: str, options: dict[str, Any]
) -> None:
    if name == "asyncio":
        factory = None
        if options.get("use_uvloop"):
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(driver, context=context)
    else:
        import trio

        context.run(trio.run, await_started, driver)
