"""Mixing bridge's and asgiref's helpers in one call chain keeps affinity and never deadlocks.

asgiref's own helpers need asyncio, so these run on asyncio; the guarantees are listed in
docs/threads.md ("Mixing with asgiref").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

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
