"""Threads that run sync calls for bridge.sync, and the one object that crosses to them.

Theory of operation
-------------------
A :class:`ThreadCall` is created on the event loop, put on exactly one *target* thread,
run there once (inside the caller's copied ``contextvars.Context``), and then posted to
the :class:`~bridge._loop.origin.Origin` of the caller's loop, which runs
``ThreadCall.wake`` there; however many calls finish between two passes of the loop,
they cost it one wake-up. The caller awaits its waiter; nothing else is allocated per
call.

Targets:

* :class:`OwnThread` -- one thread of its own that runs calls one at a time, in order:
  the process-wide thread-sensitive thread and one per ``ThreadSensitiveContext``.
* :class:`SyncFrame` -- a sync thread blocked in ``async_to_sync`` that runs calls sent
  back to it until its coroutine finishes. Frames nest; a call sent to a frame that has
  finished goes to the frame below it in the same thread (the asgiref rule).
* :class:`WorkerPool` -- idle threads for ``thread_sensitive=False``; the caller bounds
  concurrency with a ``CapacityLimiter`` before putting a call here (``bridge._loop.gate``).

Every target also implements ``concurrent.futures.Executor.submit`` so asgiref's own
``sync_to_async`` can use it (see ``bridge._loop.interop``).

Invariants: a thread never blocks on the event loop except a ``SyncFrame``'s thread,
which is by definition waiting for it; queues hold at most one entry per in-flight call,
so they are bounded by the callers' concurrency. After ``fork`` the child forgets every
thread of the parent.
"""

from __future__ import annotations

import os
import threading
from _queue import Empty, SimpleQueue  # never gevent's: bridge's OS threads wait on these
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Final, Protocol

from bridge._loop import green
from bridge._loop.interop import (
    adopt_context,
    enter_anyio_worker,
    leave_anyio_worker,
    restore_asgiref_origin,
    set_asgiref_origin,
)
from bridge._loop.origin import Origin, Waiter

__all__ = (
    "OwnThread",
    "SyncFrame",
    "Target",
    "ThreadCall",
    "WorkerPool",
    "run_serving",
    "served_call",
    "served_origin",
    "shared_thread",
    "worker_pool",
)

_IDLE_SECONDS: Final = 10.0  # an idle worker thread exits after this long unused
_MAX_IDLE: Final = 8  # a worker finishing a call while this many others idle exits at once
_state = threading.local()


def served_origin() -> Origin | None:
    """The loop whose ``sync_to_async`` call (or stream) this thread is running, if any."""
    return getattr(_state, "origin", None)


def served_call() -> ThreadCall | None:
    """The ``sync_to_async`` call this thread is running, if any (not a stream's work)."""
    return getattr(_state, "call", None)


def run_serving(origin: Origin, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in this thread as work for ``origin``: ``async_to_sync`` inside goes there."""
    previous, previous_call = getattr(_state, "origin", None), getattr(_state, "call", None)
    _state.origin, _state.call = origin, None
    try:
        return fn()
    finally:
        _state.origin, _state.call = previous, previous_call


class ThreadCall:
    """One sync call: ``fn(*args, **kwargs)`` run once in ``context`` on a target thread.

    ``origin`` is the caller's loop: the finished call is posted there, and :meth:`wake`
    wakes ``waiter`` (made by ``origin.new_waiter()``) on it. ``exc`` is the exception
    being handled by the caller, re-raised around the call so ``sys.exc_info()`` matches
    in the callee.

    ``inner`` is the ``async_to_sync`` frame the callee waits in, while its coroutine runs
    on ``origin`` (a cancelled caller cancels that coroutine first, as asgiref does).
    ``release`` is set when the caller has stopped waiting (it was cancelled): :meth:`wake`
    then drops the outcome nobody will read and calls it (to give back a limiter token).
    """

    __slots__ = (
        "args",
        "context",
        "error",
        "exc",
        "finished",
        "fn",
        "inner",
        "kwargs",
        "origin",
        "release",
        "result",
        "slot",
        "waiter",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: Any,
        exc: BaseException | None,
        origin: Origin,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = context
        self.exc = exc
        self.origin = origin
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.waiter: Waiter = origin.new_waiter()
        self.slot: object | None = None  # the limiter token it runs under (bridge._loop.gate)
        self.inner: SyncFrame | None = None
        self.release: Callable[[], object] | None = None

    def run(self) -> None:
        """On the target thread: run the call, then wake the caller on its loop."""
        self.run_here()
        self.origin.post(self)

    def run_here(self) -> None:
        state = _state
        previous, previous_call = getattr(state, "origin", None), getattr(state, "call", None)
        origin = state.origin = self.origin
        state.call = self
        asgiref_previous = set_asgiref_origin(origin.asyncio_loop)
        anyio_previous = enter_anyio_worker(origin.anyio_token)
        try:
            self.result = self.context.run(self._invoke)
        except BaseException as error:
            self.error = error
        finally:
            state.origin, state.call = previous, previous_call
            restore_asgiref_origin(asgiref_previous)
            leave_anyio_worker(anyio_previous)

    def _invoke(self) -> Any:
        adopt_context(self.context)
        exc = self.exc
        if exc is None:
            return self.fn(*self.args, **self.kwargs)
        traceback = exc.__traceback__
        try:
            raise exc
        except BaseException:
            return self.fn(*self.args, **self.kwargs)
        finally:
            exc.__traceback__ = traceback

    def wake(self) -> None:
        """On the caller's loop: mark finished and wake the current waiter."""
        self.finished = True
        waiter = self.waiter
        if not waiter.done():  # a cancelled asyncio wait has cancelled its future
            waiter.set_result(None)
        release = self.release
        if release is not None:  # the caller stopped waiting: nobody reads the outcome
            self.release = None
            self.result = self.error = None
            release()

    def outcome(self) -> Any:
        error = self.error
        if error is None:
            return self.result
        self.error = None  # the traceback references this call: break the cycle
        try:
            raise error
        finally:
            del error


class _WorkItem:
    """``Executor.submit`` for asgiref: a plain callable whose outcome goes to a Future."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as error:
            self.future.set_exception(error)
            del error
        else:
            self.future.set_result(result)


class Runnable(Protocol):
    def run(self) -> None: ...


class Target(Executor):
    """A bridge thread target: ``put`` is the lean path, ``submit`` the Executor one."""

    def put(self, item: Runnable) -> None:
        raise NotImplementedError

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.put(_WorkItem(future, fn, args, kwargs))
        return future


class OwnThread(Target):
    """A daemon thread of its own that runs calls in order; started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: SimpleQueue[Runnable | None] = SimpleQueue()
        self._thread: green.OsThread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, item: Runnable) -> None:
        if self._pid != os.getpid():
            self._start()
        self._queue.put(item)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = SimpleQueue()  # after fork, items of the parent are not ours
            self._thread = green.start_thread(self._loop, self._name)
            self._pid = os.getpid()

    def _loop(self) -> None:
        get = self._queue.get
        while (item := get()) is not None:
            item.run()
            del item

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop after the calls already queued; never blocks the caller."""
        if self._pid == os.getpid():
            self._queue.put(None)


class SyncFrame(Target):
    """A sync thread blocked in ``async_to_sync``, running calls sent back to it.

    Calls queue before a ``None`` sentinel that :meth:`finish` puts; ``_lock`` orders a
    ``put`` against ``finish``, so a call either precedes the sentinel (and runs here) or
    sees ``_broken`` and goes to the frame below. ``_work_ready`` / ``_work_items`` /
    ``_broken`` / ``_old_executor`` follow asgiref's ``CurrentThreadExecutor``, so asgiref
    can walk a stack of frames that mixes its executors and these.
    """

    # Class-level defaults, set on a frame only when they apply (one frame per call).
    #: The ``sync_to_async`` call whose thread waits here, when the coroutine runs on that
    #: call's loop (so a cancelled caller can cancel the coroutine).
    call: ThreadCall | None = None
    cancel_scope: Any = None  # trio: the scope the coroutine runs in
    cancelled = False  # the coroutine ended with its loop's cancellation
    watcher: Waiter | None = None  # woken on the loop when the coroutine ends

    def __init__(self, old_executor: Any) -> None:
        # the loop's thread puts here: under gevent the blocked thread may be a greenlet
        self._queue: green.CrossThreadQueue[Runnable | None] = green.cross_thread_queue()
        self._lock = threading.Lock()
        self._broken = False
        self._old_executor = old_executor
        self.result: Any = None
        self.error: BaseException | None = None
        self.final_context: Any = None
        #: The asyncio task driving the coroutine, kept alive here (asyncio holds tasks
        #: weakly).
        self.task: Any = None

    def cancel(self) -> None:
        """On the loop: cancel the coroutine (a started one; asyncio: once, as asgiref does)."""
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()
        elif self.task is not None:
            self.task.cancel()

    def put(self, item: Runnable) -> None:
        with self._lock:
            if not self._broken:
                self._queue.put(item)
                return
        below = self._old_executor
        if below is None:
            raise RuntimeError(
                "the sync thread this call belongs to has returned from async_to_sync; "
                "tasks started inside async_to_sync must finish before it returns"
            )
        if isinstance(below, Target):
            below.put(item)
        else:
            below.submit(item.run)

    def finish(self, result: Any, error: BaseException | None, final_context: Any) -> None:
        """From the loop: record the coroutine's outcome and release the blocked thread."""
        self.result, self.error, self.final_context = result, error, final_context
        with self._lock:
            self._broken = True
            self._queue.put(None)

    @property
    def finished(self) -> bool:
        return self._broken

    def run_until_finished(self) -> None:
        """In the blocked thread: run calls sent here until :meth:`finish`."""
        get = self._queue.get
        while (item := get()) is not None:
            item.run()
            del item

    def outcome(self) -> Any:
        error = self.error
        if error is None:
            return self.result
        self.error = None
        try:
            raise error
        finally:
            del error

    # asgiref's CurrentThreadExecutor.submit, walking down to this frame, does
    # ``with f._work_ready: if not f._broken: f._work_items.append(w); f._work_ready.notify()``.
    @property
    def _work_ready(self) -> _AsgirefLock:
        return _AsgirefLock(self._lock)

    @property
    def _work_items(self) -> _AsgirefItems:
        return _AsgirefItems(self._queue)


class _AsgirefLock:
    __slots__ = ("lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()

    def notify(self) -> None:
        pass  # the queue wakes the frame's thread itself


class _AsgirefItems:
    __slots__ = ("queue",)

    def __init__(self, queue: green.CrossThreadQueue[Runnable | None]) -> None:
        self.queue = queue

    def append(self, item: Runnable) -> None:
        self.queue.put(item)


class WorkerPool(Target):
    """Threads reused for ``thread_sensitive=False`` calls; idle ones exit after 10 s.

    One queue serves every thread of the pool (the shape of ``ThreadPoolExecutor``,
    which uvicorn's WSGI adapter uses): a thread that has just finished a call takes
    the next queued one without sleeping, so under load a few threads run the calls
    one after another. A queue per thread (the last idle thread taking each call) had
    every call wake a sleeping thread and take its turn at the GIL: through a real
    server, about four context switches per request instead of one, and 15-30% more
    CPU time per request. A thread is started only when none is free, so a call never
    waits behind another; which idle thread a call wakes is the queue's choice.

    Callers bound the running threads (a ``CapacityLimiter`` token per call, so never more
    than the limiters' total). The pool bounds the idle ones: at most :data:`_MAX_IDLE`
    wait for work (a thread finishing a call when as many others idle exits at once), and
    each of those exits after :data:`_IDLE_SECONDS` unused. After a burst the thread count
    drops back at once instead of holding every burst thread for the idle timeout.
    """

    def __init__(self) -> None:
        self.calls: SimpleQueue[Runnable] = SimpleQueue()
        # One entry per thread not running a call, less the puts counted on one (list
        # append/pop are atomic; a lock here would be held across GIL switches). A put
        # that takes an entry starts no thread and a thread retires only by taking one,
        # so there are always at least as many threads as calls queued or running.
        self.free: list[None] = []

    def put(self, item: Runnable) -> None:
        self.calls.put(item)
        try:
            self.free.pop()
        except IndexError:
            green.start_thread(self._serve, "bridge-sync-worker")  # an OS thread under gevent

    def _serve(self) -> None:
        get, free = self.calls.get, self.free
        while True:
            try:
                item = get(timeout=_IDLE_SECONDS)
            except Empty:
                try:
                    free.pop()
                except IndexError:
                    continue  # a put has counted on this thread: its call is queued
                return
            if type(item) is ThreadCall:
                item.run_here()
                # Free before the caller wakes: a caller making its next call at once
                # must find this thread instead of starting another one.
                stays = _rest(free)
                item.origin.post(item)
            else:
                item.run()
                stays = _rest(free)
            del item
            if not stays:
                return


def _rest(free: list[None]) -> bool:
    """A pool thread done with a call: free again (True), or exit (False).

    At most :data:`_MAX_IDLE` threads stay free (racy by a thread or two, never
    unbounded); one more exits without an entry, so no put counts on it.
    """
    if len(free) >= _MAX_IDLE:
        return False
    free.append(None)
    return True


_shared: OwnThread | None = None
_pool: WorkerPool | None = None


def shared_thread() -> OwnThread:
    """The process-wide thread for thread-sensitive calls outside any other scope."""
    global _shared
    if _shared is None:
        _shared = OwnThread("bridge-sync-thread-sensitive")
    return _shared


def worker_pool() -> WorkerPool:
    global _pool
    if _pool is None:
        _pool = WorkerPool()
    return _pool


def _forget_after_fork() -> None:
    """In a forked child: only the forking thread exists, and it serves no loop of ours."""
    global _pool
    _pool = None  # OwnThread objects restart themselves on the next put
    _state.origin = _state.call = None  # async_to_sync here must not go to the parent's loop


os.register_at_fork(after_in_child=_forget_after_fork)
