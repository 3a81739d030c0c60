"""asgiref's documented sync/async semantics as one table, run on asyncio and trio.

Each row is a small scenario (an async function, run on the ``anyio_backend`` loop) and
what asgiref documents it must return. tests/test_sync.py covers the same ground in depth
(cancellation, limiters, forks, memory); this table is the summary a reader checks first.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

import bridge

pytestmark = pytest.mark.timeout(30)

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def current() -> threading.Thread:
    return threading.current_thread()


async def context_reaches_the_thread() -> str:
    var.set("caller")
    return await bridge.sync_to_async(var.get)()


async def context_comes_back_from_the_thread() -> str:
    await bridge.sync_to_async(var.set)("callee")
    return var.get()


async def context_reaches_the_coroutine_and_comes_back() -> tuple[str, str]:
    async def read_and_set() -> str:
        seen = var.get()
        var.set("coroutine")
        return seen

    def sync_side() -> tuple[str, str]:
        var.set("sync")
        return bridge.async_to_sync(read_and_set)(), var.get()

    return await bridge.sync_to_async(sync_side)()


async def exception_propagates() -> str:
    def fail() -> None:
        raise LookupError("from the thread")

    try:
        await bridge.sync_to_async(fail)()
    except LookupError as error:
        return str(error)
    return "no error"


async def exc_info_matches_in_the_callee() -> bool:
    error = KeyError("handled")
    try:
        raise error
    except KeyError:
        return await bridge.sync_to_async(lambda: sys.exc_info()[1])() is error


async def sensitive_calls_share_a_thread() -> bool:
    first = await bridge.sync_to_async(current)()
    second = await bridge.sync_to_async(current)()
    return first is second and first is not current()


async def insensitive_calls_leave_the_loop_thread() -> bool:
    return await bridge.sync_to_async(current, thread_sensitive=False)() is not current()


async def nested_chain_keeps_the_outer_sync_thread() -> bool:
    async def inner() -> threading.Thread:
        return await bridge.sync_to_async(current)()

    def outer() -> bool:
        return bridge.async_to_sync(inner)() is current()

    return await bridge.sync_to_async(outer)()


async def contexts_isolate_requests() -> bool:
    threads: list[threading.Thread] = []

    async def request() -> None:
        async with bridge.ThreadSensitiveContext():
            threads.append(await bridge.sync_to_async(current)())
            await anyio.sleep(0.01)  # both requests are inside their contexts now

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        tg.start_soon(request)
    return threads[0] is not threads[1]


async def async_to_sync_in_the_loop_thread_is_refused() -> str:
    async def nothing() -> None:
        return None

    try:
        bridge.async_to_sync(nothing)()
    except RuntimeError:
        return "RuntimeError"
    return "ran"


async def many_concurrent_callers() -> bool:
    results: list[int] = []

    async def call(i: int) -> None:
        results.append(await bridge.sync_to_async(abs, thread_sensitive=i % 2 == 0)(-i))

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(call, i)
    return sorted(results) == list(range(200))


async def plain_threads_share_the_background_loop() -> bool:
    async def loop_thread() -> threading.Thread:
        return current()

    call = bridge.async_to_sync(loop_thread)
    seen: list[threading.Thread] = []
    plain = [threading.Thread(target=lambda: seen.append(call())) for _ in range(2)]
    for thread in plain:  # plain threads: no loop of their own, no caller's loop to go back to
        thread.start()
        await anyio.to_thread.run_sync(thread.join, 10)
    return len(seen) == 2 and seen[0] is seen[1]


SEMANTICS: list[Any] = [
    pytest.param(context_reaches_the_thread, "caller", id="contextvars-into-sync"),
    pytest.param(context_comes_back_from_the_thread, "callee", id="contextvars-back-from-sync"),
    pytest.param(
        context_reaches_the_coroutine_and_comes_back,
        ("sync", "coroutine"),
        id="contextvars-both-ways-through-async_to_sync",
    ),
    pytest.param(exception_propagates, "from the thread", id="exceptions-propagate"),
    pytest.param(exc_info_matches_in_the_callee, True, id="sys.exc_info-matches"),
    pytest.param(sensitive_calls_share_a_thread, True, id="thread-sensitive-one-thread"),
    pytest.param(insensitive_calls_leave_the_loop_thread, True, id="insensitive-worker-thread"),
    pytest.param(nested_chain_keeps_the_outer_sync_thread, True, id="nested-chain-affinity"),
    pytest.param(contexts_isolate_requests, True, id="ThreadSensitiveContext-isolation"),
    pytest.param(
        async_to_sync_in_the_loop_thread_is_refused, "RuntimeError", id="refused-in-loop-thread"
    ),
    pytest.param(many_concurrent_callers, True, id="many-concurrent-callers"),
    pytest.param(plain_threads_share_the_background_loop, True, id="one-background-loop"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("scenario", "expected"), SEMANTICS)
async def test_documented_semantics(scenario: Callable[[], Awaitable[Any]], expected: Any) -> None:
    assert await scenario() == expected
