"""The awaited crossing behind ``bridge.sync_to_async``: a coroutine waits for a sync call.

``call_sync`` picks a target thread (see ``bridge._loop.threads``), puts one
:class:`~bridge._loop.threads.ThreadCall` on it and awaits the call's waiter (see
``bridge._loop.origin``). On asyncio, a call waiting for a limiter token waits in
``bridge._loop.gate`` instead of the limiter's own queue, which saves it a wake-up.

Invariants: a caller waiting for a thread keeps waiting through cancellation (a thread
cannot be stopped) and re-raises the cancellation once the call has finished; the
contextvars of the callee are merged back into the caller on every outcome.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import anyio
import anyio.to_thread

from bridge._loop import gate as _gate
from bridge._loop.interop import (
    current_frame,
    current_thread_sensitive_context,
    executor_for_context,
    inside_thread,
    loop_frame,
    merge_context,
)
from bridge._loop.origin import Origin, current_origin
from bridge._loop.threads import (
    OwnThread,
    Target,
    ThreadCall,
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


def context_thread() -> OwnThread:
    return OwnThread("bridge-sync-context")


def thread_sensitive_target(origin: Origin) -> Executor:
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
    if origin.asyncio_loop is not None:
        frame = loop_frame(origin.asyncio_loop)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return shared_thread()


def sensitive_target_for(ctx: contextvars.Context, own_context: bool, origin: Origin) -> Executor:
    """:func:`thread_sensitive_target`, refusing the one case that cannot finish."""
    target = thread_sensitive_target(origin)
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


def _put(target: Executor, call: ThreadCall) -> None:
    if isinstance(target, Target):
        target.put(call)
        return

    def cancelled(future: Future[Any]) -> None:
        if future.cancelled():
            call.error = RuntimeError(f"{target!r} cancelled the call before running it")
            call.origin.post(call)

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
    origin = current_origin("awaiting a sync_to_async() function")
    ctx = contextvars.copy_context() if context is None else context
    call = ThreadCall(fn, args, kwargs, ctx, sys.exc_info()[1], origin)
    try:
        if thread_sensitive:
            await _run_on(call, sensitive_target_for(ctx, context is None, origin))
        elif executor is not None:
            await _run_on(call, executor)
        else:
            await _run_limited(call, _default_limiter(origin) if limiter is None else limiter)
    finally:
        if context is None:
            merge_context(ctx)
    return call.outcome()


_NO_ARGS: tuple[Any, ...] = ()
_NO_KWARGS: dict[str, Any] = {}  # never mutated: ThreadCall only unpacks it


async def run_in_worker(
    fn: Callable[[], Any], context: contextvars.Context, limiter: anyio.CapacityLimiter | None
) -> Any:
    """For the adapters: ``context.run(fn)`` on a worker thread under ``limiter``; its result.

    The hand-off of ``call_sync(thread_sensitive=False)`` (one ``ThreadCall``, the loop's
    ``Origin``, the worker pool, the same cancellation rule: a running call is waited for,
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

    def __init__(self, call: ThreadCall, limiter: anyio.CapacityLimiter) -> None:
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
    origin = current_origin("start_in_worker()")
    call = ThreadCall(fn, _NO_ARGS, _NO_KWARGS, context, None, origin)
    if limiter is None:
        limiter = _default_limiter(origin)
    try:
        limiter.acquire_on_behalf_of_nowait(call)
    except anyio.WouldBlock:
        await limiter.acquire_on_behalf_of(call)
    worker_pool().put(call)
    return RunningCall(call, limiter)


async def finish_in_worker(running: RunningCall) -> Any:
    """Wait for the call (through cancellation: then re-raised), release its token."""
    call = running.call
    try:
        if not call.finished:
            await _wait_for(call)
    except BaseException:
        await _wait_shielded(call)
        raise
    finally:
        running.limiter.release_on_behalf_of(call)
    return call.outcome()


async def _wait_for(call: ThreadCall) -> None:
    waiter = call.waiter
    if waiter.done():  # woken for nothing (a cancellation absorbed): wait anew
        waiter = call.waiter = call.origin.new_waiter()
    await waiter


async def _wait_shielded(call: ThreadCall) -> None:
    """Wait until ``call`` has finished, whatever cancellation arrives meanwhile."""
    # The shield stops anyio from re-delivering its cancellation on every loop pass;
    # a native task.cancel() still arrives once and is absorbed here.
    cancelled = anyio.get_cancelled_exc_class()
    with anyio.CancelScope(shield=True):
        while not call.finished:
            try:
                await _wait_for(call)
            except cancelled:
                continue


async def _run_on(call: ThreadCall, target: Executor) -> None:
    _put(target, call)
    try:
        await call.waiter
    except BaseException:
        await _wait_shielded(call)
        raise


def _default_limiter(origin: Origin) -> anyio.CapacityLimiter:
    """anyio's default thread limiter of the running loop, remembered by its origin."""
    limiter = origin.default_limiter
    if limiter is None:
        limiter = origin.default_limiter = anyio.to_thread.current_default_thread_limiter()
    return limiter  # type: ignore[no-any-return]


async def _run_limited(call: ThreadCall, limiter: anyio.CapacityLimiter) -> None:
    """Run ``call`` in the worker pool holding a token of ``limiter``."""
    if call.origin.asyncio_loop is None:  # the gate runs its pump as an asyncio task
        try:
            limiter.acquire_on_behalf_of_nowait(call)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(call)
        try:
            await _run_on(call, worker_pool())
        finally:
            limiter.release_on_behalf_of(call)
        return
    _gate.admit(call, limiter)
    try:
        await call.waiter
    except BaseException:
        if call.slot is None:  # still queued: nothing runs, nothing to wait for
            _gate.forget(call, limiter)
            raise
        await _wait_shielded(call)
        raise
    finally:
        if call.slot is not None:
            _gate.pass_on(call.slot, limiter, call.origin)
