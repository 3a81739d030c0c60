"""The awaited crossing behind ``bridge.sync_to_async``: a coroutine waits for a sync call.

``call_sync`` picks a target thread (see ``bridge._loop.threads``), puts one
:class:`~bridge._loop.threads.Call` on it and awaits its wake-up: on asyncio through a future
(and ``bridge._loop.gate`` when a limiter is saturated), on trio through an event.

Invariants: a caller waiting for a thread keeps waiting through cancellation (a thread
cannot be stopped) and re-raises the cancellation once the call has finished; the
contextvars of the callee are merged back into the caller on every outcome.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import anyio
import anyio.to_thread

from bridge._loop import gate as _gate
from bridge._loop.interop import (
    anyio_token_here,
    current_frame,
    current_thread_sensitive_context,
    executor_for_context,
    inside_thread,
    loop_frame,
    merge_context,
)
from bridge._loop.threads import (
    Call,
    Inbox,
    OwnThread,
    Target,
    running_trio_token,
    shared_thread,
    worker_pool,
)

__all__ = (
    "RunningCall",
    "call_sync",
    "context_thread",
    "finish_in_worker",
    "run_in_worker",
    "start_in_worker",
)

_get_running_loop = asyncio._get_running_loop


_inboxes: weakref.WeakKeyDictionary[Any, Inbox] = weakref.WeakKeyDictionary()
_last_inbox: tuple[Any, Inbox | None] = (None, None)
_inbox_lock = threading.Lock()


def inbox_for(origin: Any) -> Inbox:
    """The one :class:`Inbox` of an asyncio loop or trio token (remembered for the last)."""
    global _last_inbox
    last_origin, inbox = _last_inbox
    if last_origin is origin and inbox is not None:
        return inbox
    with _inbox_lock:  # loops running in several threads may get here at once
        inbox = _inboxes.get(origin)
        if inbox is None:
            inbox = _inboxes[origin] = Inbox(origin, anyio_token_here())
    _last_inbox = (origin, inbox)
    return inbox


def context_thread() -> OwnThread:
    return OwnThread("bridge-sync-context")


def thread_sensitive_target(loop: asyncio.AbstractEventLoop | None) -> Executor:
    """Where a thread-sensitive call runs: the innermost sync frame, else the context's thread."""
    frame = current_frame()
    if frame is not None:
        return frame  # type: ignore[no-any-return]
    scope = current_thread_sensitive_context()
    if scope is not None and not getattr(scope, "_finished", False):
        if getattr(scope, "_exited", False):
            raise RuntimeError(
                "this ThreadSensitiveContext has exited; tasks started inside it must "
                "finish before it exits"
            )
        return executor_for_context(scope, context_thread)
    if loop is not None:
        frame = loop_frame(loop)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return shared_thread()


def sensitive_target_for(ctx: contextvars.Context, own_context: bool, loop: Any) -> Executor:
    """:func:`thread_sensitive_target`, refusing the one case that cannot finish."""
    target = thread_sensitive_target(loop)
    if isinstance(target, OwnThread):
        if inside_thread.get() is target:
            raise RuntimeError(
                "this thread-sensitive call would deadlock: it was made by a task started from "
                "a call running in that same thread, which is waiting for it. Cross back with "
                "bridge.async_to_sync (it keeps the thread serving calls) instead of "
                "run_coroutine_threadsafe / from_thread.run"
            )
        if own_context:
            ctx.run(inside_thread.set, target)
    return target


def _put(target: Executor, call: Call) -> None:
    if isinstance(target, Target):
        target.put(call)
        return

    def cancelled(future: Future[Any]) -> None:
        if future.cancelled():
            call.error = RuntimeError(f"{target!r} cancelled the call before running it")
            call.schedule(call)

    target.submit(call.run).add_done_callback(cancelled)


async def call_sync(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    thread_sensitive: bool,
    executor: Executor | None,
    limiter: anyio.CapacityLimiter | None,
    context: contextvars.Context | None,
) -> Any:
    loop = _get_running_loop()
    ctx = contextvars.copy_context() if context is None else context
    exc = sys.exc_info()[1]
    try:
        if loop is not None:
            call = Call(fn, args, kwargs, ctx, exc, loop)
            inbox = inbox_for(loop)
            call.schedule, call.anyio_token = inbox.post, inbox.anyio_token
            if thread_sensitive:
                await _on_asyncio(loop, call, sensitive_target_for(ctx, context is None, loop))
            elif executor is not None:
                await _on_asyncio(loop, call, executor)
            else:
                await _on_asyncio_limited(loop, call, limiter)
        else:
            call = await _on_trio(
                fn, args, kwargs, ctx, exc, thread_sensitive, executor, limiter, context is None
            )
    finally:
        if context is None:
            merge_context(ctx)
    return call.outcome()


_NO_ARGS: tuple[Any, ...] = ()
_NO_KWARGS: dict[str, Any] = {}  # never mutated: Call only unpacks it


async def run_in_worker(
    fn: Callable[[], Any], context: contextvars.Context, limiter: anyio.CapacityLimiter | None
) -> Any:
    """For the adapters: ``context.run(fn)`` on a worker thread under ``limiter``; its result.

    The hand-off of ``call_sync(thread_sensitive=False)`` (one ``Call``, the loop's
    ``Inbox``, the worker pool, the same cancellation rule: a running call is waited for,
    then the cancellation is raised) without what only a ``sync_to_async`` caller needs:
    the caller's ``sys.exc_info()`` is not carried over and ``context`` (the caller's, to
    keep across several calls) is not merged back. ``limiter`` None means anyio's default
    thread limiter of the running loop. A call that waits for a token waits in the
    limiter's own queue (not ``_gate``'s), so ``limiter.statistics()`` shows it.
    """
    return await finish_in_worker(await start_in_worker(fn, context, limiter))


class RunningCall:
    """A call :func:`start_in_worker` dispatched; pass it to :func:`finish_in_worker`."""

    __slots__ = ("call", "limiter")

    def __init__(self, call: Call, limiter: anyio.CapacityLimiter) -> None:
        self.call = call
        self.limiter = limiter

    @property
    def finished(self) -> bool:
        return self.call.finished


async def start_in_worker(
    fn: Callable[[], Any], context: contextvars.Context, limiter: anyio.CapacityLimiter | None
) -> RunningCall:
    """:func:`run_in_worker` in two halves: wait for a token and dispatch the call.

    Between the halves the caller's task is free (e.g. to send what the thread
    produces); it must always await :func:`finish_in_worker`, which releases the token.
    Cancelled while waiting for the token: nothing was dispatched or acquired.
    """
    loop = _get_running_loop()
    origin = loop if loop is not None else running_trio_token("start_in_worker()")
    call = Call(fn, _NO_ARGS, _NO_KWARGS, context, None, origin)
    inbox = inbox_for(origin)
    call.schedule, call.anyio_token = inbox.post, inbox.anyio_token
    if limiter is None:
        limiter = (
            _default_limiter(loop)
            if loop is not None
            else anyio.to_thread.current_default_thread_limiter()
        )
    try:
        limiter.acquire_on_behalf_of_nowait(call)
    except anyio.WouldBlock:
        await limiter.acquire_on_behalf_of(call)
    if loop is not None:
        call.waiter = loop.create_future()
    else:
        import trio

        call.waiter = trio.Event()
    worker_pool().put(call)
    return RunningCall(call, limiter)


async def finish_in_worker(running: RunningCall) -> Any:
    """Wait for the call (through cancellation: then re-raised), release its token."""
    call = running.call
    try:
        if not call.finished:
            await _wait_for(call)
    except BaseException:
        cancelled = anyio.get_cancelled_exc_class()
        with anyio.CancelScope(shield=True):
            while not call.finished:
                try:
                    await _wait_for(call)
                except cancelled:  # a native task.cancel() still arrives once
                    continue
        raise
    finally:
        running.limiter.release_on_behalf_of(call)
    return call.outcome()


async def _wait_for(call: Call) -> None:
    waiter = call.waiter
    if hasattr(waiter, "set_result"):
        if waiter.done():  # woken for nothing (a cancellation absorbed): wait anew
            waiter = call.waiter = asyncio.get_running_loop().create_future()
        await waiter
    else:
        if waiter.is_set():
            import trio

            waiter = call.waiter = trio.Event()
        await waiter.wait()


async def _on_asyncio(loop: asyncio.AbstractEventLoop, call: Call, target: Executor) -> None:
    call.waiter = future = loop.create_future()
    _put(target, call)
    try:
        await future
    except BaseException:
        await _finish_shielded_asyncio(loop, call)
        raise


async def _finish_shielded_asyncio(loop: asyncio.AbstractEventLoop, call: Call) -> None:
    # The shield stops anyio from re-delivering its cancellation on every loop pass;
    # a native task.cancel() still arrives once and is absorbed here.
    with anyio.CancelScope(shield=True):
        while not call.finished:
            call.waiter = future = loop.create_future()
            try:
                await future
            except asyncio.CancelledError:
                continue


_last_default: tuple[Any, anyio.CapacityLimiter | None] = (None, None)


def _default_limiter(loop: asyncio.AbstractEventLoop) -> anyio.CapacityLimiter:
    """anyio's default thread limiter of ``loop``, remembered for the last loop seen."""
    global _last_default
    last_loop, limiter = _last_default
    if last_loop is not loop or limiter is None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        _last_default = (loop, limiter)
    return limiter


async def _on_asyncio_limited(
    loop: asyncio.AbstractEventLoop, call: Call, limiter: anyio.CapacityLimiter | None
) -> None:
    if limiter is None:
        limiter = _default_limiter(loop)
    call.waiter = future = loop.create_future()
    _gate.admit(call, limiter, loop)
    try:
        await future
    except BaseException:
        if call.slot is None:  # still queued: nothing runs, nothing to wait for
            _gate.forget(call, limiter)
            raise
        await _finish_shielded_asyncio(loop, call)
        raise
    finally:
        if call.slot is not None:
            _gate.pass_on(call.slot, limiter)


async def _on_trio(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ctx: contextvars.Context,
    exc: BaseException | None,
    thread_sensitive: bool,
    executor: Executor | None,
    limiter: anyio.CapacityLimiter | None,
    own_context: bool,
) -> Call:
    token = running_trio_token("awaiting a sync_to_async() function")
    call = Call(fn, args, kwargs, ctx, exc, token)
    inbox = inbox_for(token)
    call.schedule, call.anyio_token = inbox.post, inbox.anyio_token
    if thread_sensitive:
        await _wait_trio(call, sensitive_target_for(ctx, own_context, None))
    elif executor is not None:
        await _wait_trio(call, executor)
    else:
        if limiter is None:
            limiter = anyio.to_thread.current_default_thread_limiter()
        try:
            limiter.acquire_on_behalf_of_nowait(call)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(call)
        try:
            await _wait_trio(call, worker_pool())
        finally:
            limiter.release_on_behalf_of(call)
    return call


async def _wait_trio(call: Call, target: Executor) -> None:
    import trio

    call.waiter = event = trio.Event()
    _put(target, call)
    try:
        await event.wait()
    except BaseException:
        with trio.CancelScope(shield=True):
            await event.wait()
        raise
