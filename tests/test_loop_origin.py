"""bridge._loop.origin: one running loop (asyncio or trio) as every other thread sees it."""

from __future__ import annotations

import asyncio
import logging
import threading

import anyio
import pytest

from bridge._loop.origin import LoopCallback, current_origin, origin_of, wake_waiter


@pytest.mark.anyio
async def test_a_thread_wakes_a_waiter_of_the_running_loop() -> None:
    origin = current_origin("this test")
    waiter = origin.new_waiter()
    seen: list[str] = []

    def from_thread() -> None:
        origin.post(LoopCallback(seen.append, threading.current_thread().name))
        origin.post(LoopCallback(wake_waiter, waiter))

    thread = threading.Thread(target=from_thread, name="poster")
    thread.start()
    with anyio.fail_after(10):
        await waiter
    thread.join()
    assert waiter.done()
    assert seen == ["poster"]  # ran on the loop, in the order posted


@pytest.mark.anyio
async def test_one_origin_per_loop_whichever_thread_asks_first() -> None:
    origin = current_origin("this test")
    assert current_origin("this test") is origin
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(origin_of(origin.native)))
    thread.start()
    thread.join()
    assert found == [origin]


@pytest.mark.anyio
async def test_call_soon_threadsafe_runs_on_the_loop_thread() -> None:
    origin = current_origin("this test")
    waiter = origin.new_waiter()
    loop_thread = threading.get_ident()
    ran_in: list[int] = []

    def on_loop(tag: str) -> None:
        ran_in.append(threading.get_ident())
        assert tag == "tag"
        wake_waiter(waiter)

    threading.Thread(target=origin.call_soon_threadsafe, args=(on_loop, "tag")).start()
    with anyio.fail_after(10):
        await waiter
    assert ran_in == [loop_thread]


def test_outside_a_loop_current_origin_names_the_caller() -> None:
    with pytest.raises(RuntimeError, match="frobnicate must run inside a running asyncio or trio"):
        current_origin("frobnicate")


def test_a_closed_loop_drops_posts_and_logs_a_lost_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    origin = origin_of(loop)
    with pytest.raises(RuntimeError):
        origin.call_soon_threadsafe(print)

    class Finished:
        error = ValueError("lost")

        def wake(self) -> None:
            raise AssertionError("a closed loop runs nothing")

    with caplog.at_level(logging.WARNING, logger="bridge.sync"):
        origin.post(Finished())
    assert not origin.items
    assert not origin.pending
    assert "ValueError: lost" in caplog.text
