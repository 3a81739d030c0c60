"""The awaited crossing behind ``bridge.sync_to_async``: a coroutine waits for a sync call.

``call_sync`` picks a target thread (see ``bridge._loop.threads``), puts one
:class:`~bridge._loop.threads.ThreadCall` on it and awaits the call's waiter (see
``bridge._loop.origin``). On asyncio, a call waiting for a limiter token waits in
``bridge._loop.gate`` instead of the limiter's own queue, which saves it a wake-up.

Cancellation follows asgiref. A thread cannot be stopped, so when the awaiting task is
cancelled the call is *abandoned*: the task raises the cancellation at once and the sync
function runs to its end in its thread, whose later calls still queue behind it (a
thread-sensitive thread runs one call at a time, in order); a limiter token stays taken
until the function returns. One exception, also asgiref's: if the function waits in
``async_to_sync`` for a coroutine on the caller's loop, that coroutine is cancelled first
and, if it handles the cancellation and returns, the caller waits for the function and
returns its result (how Django's views shield work from a disconnect). With
``wait_on_cancel=True`` the caller instead waits for the function, shielded, then raises.

Invariants: the contextvars of the callee are merged back into the caller on every
outcome; an abandoned call's outcome is dropped when it finishes, and its token released
then. The adapters' ``run_in_worker`` always waits (their thread holds the request).
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
from bridge._loop.origin import Origin, Waiter, current_origin
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
    wait_on_cancel: bool = False,
) -> Any:
    origin = current_origin("awaiting a sync_to_async() function")
    ctx = contextvars.copy_context() if context is None else context
    call = ThreadCall(fn, args, kwargs, ctx, sys.exc_info()[1], origin)
    try:
        if thread_sensitive:
            target = sensitive_target_for(ctx, context is None, origin)
            await _run_on(call, target, wait_on_cancel)
        elif executor is not None:
            await _run_on(call, executor, wait_on_cancel)
        else:
            if limiter is None:
                limiter = _default_limiter(origin)
            await _run_limited(call, limiter, wait_on_cancel)
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


async def _run_on(call: ThreadCall, target: Executor, wait_on_cancel: bool) -> None:
    _put(target, call)
    try:
        await call.waiter
    except BaseException:
        if wait_on_cancel:
            await _wait_shielded(call)
            raise
        if not await _settle_cancelled(call, _nothing):
            raise


def _nothing() -> None:
    pass


async def _settle_cancelled(call: ThreadCall, release: Callable[[], object]) -> bool:
    """The caller of ``call`` was cancelled: True if the call's outcome stands instead.

    False: the call is abandoned (``release`` runs once it finishes) and the caller raises.
    True: the function waited in ``async_to_sync`` for a coroutine of this loop, which was
    cancelled and returned anyway, and the function has finished (asgiref's rule).
    """
    frame = call.inner
    if frame is not None and not call.finished:
        frame.cancel()
        if not frame.finished:
            frame.watcher = call.origin.new_waiter()
            if not await _wait_unless_cancelled_again(frame.watcher):
                return _abandon(call, release)
        if not frame.cancelled and await _wait_for_call_unless_cancelled_again(call):
            return True
    return _abandon(call, release)


def _abandon(call: ThreadCall, release: Callable[[], object]) -> bool:
    if call.finished:  # it finished as the cancellation arrived: the cancellation wins
        call.result = call.error = None
        release()
    else:
        call.release = release
    return False


async def _wait_unless_cancelled_again(waiter: Waiter) -> bool:
    """Wait for ``waiter``; False if a second native asyncio cancellation arrives first.

    The shield keeps anyio's (and trio's) cancel scope, already cancelled, from ending the
    wait at once; asyncio's ``Task.cancel()`` still gets through it, as in asgiref.
    """
    with anyio.CancelScope(shield=True):
        try:
            await waiter
        except anyio.get_cancelled_exc_class():
            return False
    return True


async def _wait_for_call_unless_cancelled_again(call: ThreadCall) -> bool:
    if call.finished:
        return True
    waiter = call.waiter
    if waiter.done():  # the cancelled wait cancelled the asyncio future
        waiter = call.waiter = call.origin.new_waiter()
    return await _wait_unless_cancelled_again(waiter)


def _default_limiter(origin: Origin) -> anyio.CapacityLimiter:
    """anyio's default thread limiter of the running loop, remembered by its origin."""
    limiter = origin.default_limiter
    if limiter is None:
        limiter = origin.default_limiter = anyio.to_thread.current_default_thread_limiter()
    return limiter  # type: ignore[no-any-return]


async def _run_limited(
    call: ThreadCall, limiter: anyio.CapacityLimiter, wait_on_cancel: bool
) -> None:
    """Run ``call`` in the worker pool holding a token of ``limiter``."""
    if call.origin.asyncio_loop is None:  # the gate runs its pump as an asyncio task
        try:
            limiter.acquire_on_behalf_of_nowait(call)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(call)
        call.slot = call
        worker_pool().put(call)
    else:
        _gate.admit(call, limiter)
    abandoned = False
    try:
        await call.waiter
    except BaseException:
        if call.slot is None:  # still queued: nothing runs, nothing to wait for
            _gate.forget(call, limiter)
            raise
        if wait_on_cancel:
            await _wait_shielded(call)
            raise
        slot = call.slot
        if not await _settle_cancelled(call, lambda: _gate.pass_on(slot, limiter, call.origin)):
            abandoned = True
            raise
    finally:
        if call.slot is not None and not abandoned:
            _gate.pass_on(call.slot, limiter, call.origin)
