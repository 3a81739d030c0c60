"""Mixing bridge's and asgiref's helpers in one call chain keeps affinity and never deadlocks.

asgiref's own helpers need asyncio, so these run on asyncio; the guarantees are listed in
docs/threads.md ("Mixing with asgiref"). The second half re-runs the scenarios of asgiref's
own test suite (tests/test_sync.py) against bridge's functions, on trio too where they do
not use asyncio's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
import anyio.to_thread
import pytest
from asgiref import sync as asgiref_sync

import bridge

pytestmark = [pytest.mark.timeout(30)]


def current() -> threading.Thread:
    return threading.current_thread()


def in_plain_thread(fn: Callable[[], Any]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=20)


LIBS: dict[str, tuple[Any, Any]] = {
    "bridge": (bridge.sync_to_async, bridge.async_to_sync),
    "asgiref": (asgiref_sync.sync_to_async, asgiref_sync.async_to_sync),
}


@pytest.mark.parametrize(
    "chain",
    [
        pytest.param(("asgiref", "bridge"), id="asgiref-a2s/bridge-s2a"),
        pytest.param(("bridge", "asgiref"), id="bridge-a2s/asgiref-s2a"),
        pytest.param(("bridge", "asgiref", "asgiref", "bridge", "bridge", "asgiref"), id="mixed-6"),
        pytest.param(
            ("asgiref", "bridge", "bridge", "asgiref", "asgiref", "bridge"), id="mixed-6b"
        ),
    ],
)
def test_outer_sync_thread_keeps_affinity_across_libraries(chain: tuple[str, ...]) -> None:
    """Plain thread -> a2s(lib0) -> s2a(lib1) -> a2s(lib2) -> ...: every sync step in one thread."""

    def build(depth: int) -> Callable[[], list[threading.Thread]]:
        if depth == len(chain):
            return lambda: [current()]
        lib = chain[depth]
        if depth % 2 == 0:  # a sync step calling async code
            inner_async = build(depth + 1)
            return lambda: [current(), *LIBS[lib][1](inner_async)()]
        inner_sync = build(depth + 1)

        async def step() -> list[threading.Thread]:
            result: list[threading.Thread] = await LIBS[lib][0](inner_sync)()
            return result

        return step  # type: ignore[return-value]

    threads = in_plain_thread(build(0))
    assert len(threads) == len(chain) // 2 + 1
    assert len(set(threads)) == 1, threads


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("context_lib", ["bridge", "asgiref"])
async def test_thread_sensitive_context_is_shared_by_both_libraries(context_lib: str) -> None:
    context = (
        bridge.ThreadSensitiveContext()
        if context_lib == "bridge"
        else asgiref_sync.ThreadSensitiveContext()
    )
    async with context:
        ours = await bridge.sync_to_async(current)()
        theirs = await asgiref_sync.sync_to_async(current)()
        ours_again = await bridge.sync_to_async(current)()
    assert ours is theirs is ours_again


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asgiref_async_to_sync_in_a_bridge_worker_uses_the_original_loop() -> None:
    outer = asyncio.get_running_loop()

    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    for thread_sensitive in (True, False):
        call = bridge.sync_to_async(
            asgiref_sync.async_to_sync(where), thread_sensitive=thread_sensitive
        )
        assert await call() is outer


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bridge_async_to_sync_in_an_asgiref_worker_uses_the_original_loop() -> None:
    outer = asyncio.get_running_loop()

    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    for thread_sensitive in (True, False):
        call = asgiref_sync.sync_to_async(
            bridge.async_to_sync(where), thread_sensitive=thread_sensitive
        )
        assert await call() is outer


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_nested_mixed_chain_from_async_code_does_not_deadlock() -> None:
    async def asgiref_step() -> list[threading.Thread]:
        result: list[threading.Thread] = await asgiref_sync.sync_to_async(innermost)()
        return result

    def innermost() -> list[threading.Thread]:
        return [current()]

    def bridge_sync_step() -> list[threading.Thread]:
        return [current(), *asgiref_sync.async_to_sync(asgiref_step)()]

    threads = await asyncio.wait_for(bridge.sync_to_async(bridge_sync_step)(), 10)
    assert len(set(threads)) == 1


def test_asgiref_walks_down_its_executor_stack_into_a_bridge_frame() -> None:
    """A call for asgiref's finished frame goes to the bridge frame below it, as asgiref does."""
    current_thread_executor = pytest.importorskip("asgiref.current_thread_executor")
    from bridge._loop.threads import SyncFrame

    ours = SyncFrame(None)
    theirs = current_thread_executor.CurrentThreadExecutor(ours)
    done: Future[None] = Future()
    done.set_result(None)
    theirs.run_until_future(done)  # asgiref's frame is finished now
    submitted = in_plain_thread(lambda: theirs.submit(lambda: 42))
    ours.finish(None, None, None)
    ours.run_until_finished()  # runs the call asgiref handed down, in this thread
    assert submitted.result(timeout=5) == 42


# -- asgiref's own test scenarios, run against bridge's functions -----------------------
#
# Re-expressed from asgiref's tests/test_sync.py (the ones that do not check asgiref's
# error wording or its classes). They model Django: a request task, sync and async
# middleware layers, a disconnect that cancels the request task.


class Shielded:
    """An async view that shields a subtask from the request's cancellation.

    The view starts ``work`` as a task and awaits it through ``asyncio.shield``; when the
    cancellation reaches the view it unblocks the subtask, waits for it and returns.
    """

    def __init__(self, subtask: Callable[[], Any] | None = None) -> None:
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unblock: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.caught_cancel = False
        self.view_completed = False
        self.work_completed = False
        self.subtask = subtask

    async def work(self) -> None:
        self.started.set_result(None)
        await self.unblock
        self.work_completed = True

    async def view(self) -> None:
        if self.subtask is None:
            task = asyncio.ensure_future(self.work())
        else:
            task = asyncio.ensure_future(self.subtask())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.caught_cancel = True
            self.unblock.set_result(None)
            await task
            self.view_completed = True

    async def cancel_request(self, request: Coroutine[Any, Any, Any]) -> bool:
        """Run ``request`` as a task, cancel it once the subtask runs; True if it raised."""
        task = asyncio.ensure_future(request)
        await self.started
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False


def chain_of_middleware(view: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """sync -> async -> sync -> async -> sync -> view, every crossing through bridge."""

    def innermost_sync() -> None:
        bridge.async_to_sync(view)()

    async def second_async() -> None:
        await bridge.sync_to_async(innermost_sync)()

    def middle_sync() -> None:
        bridge.async_to_sync(second_async)()

    async def first_async() -> None:
        await bridge.sync_to_async(middle_sync)()

    def outer_sync() -> None:
        bridge.async_to_sync(first_async)()

    return outer_sync


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("layers", ["sync", "async", "chain"])
async def test_a_view_shields_its_work_from_the_request_cancellation(layers: str) -> None:
    """The cancellation reaches the async view through the sync layers; the view handles
    it, so the request task ends normally and the shielded work completes."""
    case = Shielded()
    async with bridge.ThreadSensitiveContext():
        if layers == "async":
            request = case.view()
        elif layers == "sync":
            request = bridge.sync_to_async(lambda: bridge.async_to_sync(case.view)())()
        else:
            request = bridge.sync_to_async(chain_of_middleware(case.view))()
        cancel_propagated = await case.cancel_request(request)
        assert not cancel_propagated
        assert case.caught_cancel
        assert case.view_completed
    assert case.work_completed


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_shielded_work_that_itself_crosses_to_sync_and_back_completes() -> None:
    """As above through the whole chain, with the shielded subtask a sync function that
    calls back into async code: the parent's cancellation must not reach the subtask."""
    holder: list[Shielded] = []

    def sync_parent() -> None:
        bridge.async_to_sync(holder[0].work)()

    case = Shielded(subtask=bridge.sync_to_async(sync_parent))
    holder.append(case)
    async with bridge.ThreadSensitiveContext():
        request = bridge.sync_to_async(chain_of_middleware(case.view))()
        assert not await case.cancel_request(request)
        assert case.caught_cancel
        assert case.view_completed
    assert case.work_completed


@pytest.mark.anyio
@pytest.mark.parametrize("thread_sensitive", [True, False], ids=["sensitive", "pooled"])
async def test_a_timeout_around_a_blocking_call_fires_without_waiting_for_it(
    thread_sensitive: bool,
) -> None:
    """``asyncio.timeout(0.1)`` around ``sync_to_async(time.sleep)(1)`` in asgiref's
    words: the timeout is raised while the function still runs."""
    release, finished = threading.Event(), threading.Event()

    def blocking() -> None:
        release.wait(20)
        finished.set()

    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.1):
            await bridge.sync_to_async(blocking, thread_sensitive=thread_sensitive)()
    assert not finished.is_set()
    release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 20)


@pytest.mark.anyio
async def test_a_waiter_blocking_the_thread_its_trigger_needs_times_out_instead_of_hanging() -> (
    None
):
    """asgiref's xfail'd blocker case: the thread-sensitive thread waits for an event that
    only a later thread-sensitive call sets, so they deadlock by design. The timeout must
    still end the wait, after which the trigger runs and nothing is left hanging."""
    event = threading.Event()
    trigger_ran = anyio.Event()

    async def trigger() -> None:
        await anyio.sleep(0.2)
        await bridge.sync_to_async(event.set)()  # queued behind the waiter
        trigger_ran.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(trigger)
        with pytest.raises(TimeoutError):
            with anyio.fail_after(1):
                await bridge.sync_to_async(event.wait)()
        event.set()  # what asgiref's test does on timeout, so the queue drains
        with anyio.fail_after(20):
            await trigger_ran.wait()


@pytest.mark.anyio
async def test_a_pooled_waiter_is_released_by_a_thread_sensitive_trigger() -> None:
    """asgiref's passing blocker case: the waiter is not thread-sensitive, so the trigger
    has its thread and the waiter returns."""
    event = threading.Event()

    async def trigger() -> None:
        await anyio.sleep(0.2)
        await bridge.sync_to_async(event.set)()

    async def waiter() -> int:
        await bridge.sync_to_async(event.wait, thread_sensitive=False)()
        return 42

    async with anyio.create_task_group() as tg:
        tg.start_soon(trigger)
        with anyio.fail_after(10):
            assert await waiter() == 42


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_wait_for_around_a_call_sent_back_to_the_outer_sync_thread() -> None:
    main = threading.current_thread()
    seen: dict[str, threading.Thread] = {}

    def task() -> None:
        seen["task"] = threading.current_thread()

    async def view() -> None:
        await asyncio.wait_for(bridge.sync_to_async(task)(), timeout=10)

    def middleware() -> None:
        seen["middleware"] = threading.current_thread()
        bridge.async_to_sync(view)()

    async with bridge.ThreadSensitiveContext():
        await bridge.sync_to_async(middleware)()
    assert seen["middleware"] is not main
    assert seen["task"] is seen["middleware"]


def _put_in_queue_through_async_to_sync(queue: Any) -> None:
    async def put() -> None:
        queue.put(42)

    bridge.async_to_sync(put)()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.anyio
async def test_a_multiprocessing_child_forked_inside_sync_to_async_uses_async_to_sync() -> None:
    def start_child() -> int:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_put_in_queue_through_async_to_sync, args=(queue,))
        child.start()
        child.join(20)
        if child.is_alive():
            child.kill()
            child.join()
            pytest.fail("the forked child hung in async_to_sync")
        value: int = queue.get(timeout=5)
        return value

    assert await bridge.sync_to_async(start_child)() == 42


def test_cancelling_before_the_inner_coroutine_starts_leaves_no_thread_parked() -> None:
    """The request task is cancelled while the coroutine its sync code handed to
    async_to_sync is still queued on the loop; the context must exit and the loop close
    without waiting forever on the parked thread (asgiref #535)."""
    entered = threading.Event()
    outcome: list[str] = []

    async def inner() -> None:
        await asyncio.sleep(0.2)

    def sync_code() -> None:
        entered.set()
        try:
            bridge.async_to_sync(inner)()
            outcome.append("returned")
        except BaseException as error:
            outcome.append(type(error).__name__)

    async def main() -> None:
        async with bridge.ThreadSensitiveContext():
            task = asyncio.ensure_future(bridge.sync_to_async(sync_code)())
            await asyncio.sleep(0)
            assert entered.wait(10)
            time.sleep(0.1)  # noqa: ASYNC251 - hold the loop: the coroutine's start is queued
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    in_plain_thread(lambda: asyncio.run(main()))
    deadline = time.monotonic() + 20
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome  # the sync code got an outcome: it is not parked forever


def test_tasks_started_inside_nested_crossings_can_be_awaited_outside() -> None:
    async def inner() -> asyncio.Task[None]:
        return asyncio.ensure_future(bridge.sync_to_async(lambda: None)())

    async def outer() -> asyncio.Task[asyncio.Task[None]]:
        return asyncio.ensure_future(bridge.sync_to_async(bridge.async_to_sync(inner))())

    async def main() -> None:
        outer_task = await bridge.sync_to_async(bridge.async_to_sync(outer))()
        inner_task = await outer_task
        await inner_task

    in_plain_thread(lambda: bridge.async_to_sync(main)())


def test_two_tasks_started_inside_async_to_sync_run_after_it_returns() -> None:
    barrier = asyncio.Barrier(3)
    event = threading.Event()

    async def inner() -> None:
        task = asyncio.ensure_future(bridge.sync_to_async(event.wait)(10))
        await barrier.wait()
        await task

    async def outer() -> tuple[asyncio.Task[None], asyncio.Task[None]]:
        first, second = asyncio.ensure_future(inner()), asyncio.ensure_future(inner())
        await barrier.wait()
        event.set()
        return first, second

    async def main() -> None:
        first, second = await bridge.sync_to_async(bridge.async_to_sync(outer))()
        await first
        await second

    in_plain_thread(lambda: asyncio.run(main()))
