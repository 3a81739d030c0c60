"""``receive_within``: a receive that finishes at once costs no deadline; one that waits is timed.

Every case runs on asyncio and trio. On asyncio the receive coroutine is
stepped once outside the deadline and timed only once it suspends, so the
cases cover: no suspension, a suspension that ends in time, one that never
ends (None), a receive that enters a cancel scope of its own before it
suspends (the nesting an anyio scope entered late would break), errors
before and after suspending, cancellation from outside, and awaitables that
are not coroutines. The end-to-end cases put the same receives under
RequestBuffering in both modes (408, disconnect, normal body).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bridge import RequestBuffering
from bridge.middleware._core.timed_receive import receive_within
from bridge.testing import InnerApp

pytestmark = pytest.mark.anyio

Message = dict[str, Any]
BODY: Message = {"type": "http.request", "body": b"abc", "more_body": False}
Receive = Callable[[], Awaitable[Message]]


async def at_once() -> Message:
    return BODY


async def after_a_checkpoint() -> Message:
    await anyio.lowlevel.checkpoint()
    return BODY


async def inside_own_scope() -> Message:
    # Like a receive wrapped by another middleware (Starlette's BaseHTTPMiddleware
    # awaits inside a task group): a cancel scope entered before it suspends.
    with anyio.CancelScope():
        await anyio.lowlevel.checkpoint()
        with anyio.move_on_after(30):
            await anyio.lowlevel.checkpoint()
    return BODY


async def never() -> Message:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def never_inside_own_scope() -> Message:
    with anyio.CancelScope():
        await anyio.sleep_forever()
    raise AssertionError("unreachable")


class NotACoroutine:
    """An awaitable object (not a native coroutine), as some servers' receive returns."""

    def __init__(self, inner: Receive) -> None:
        self.inner = inner

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.inner().__await__()


@pytest.mark.parametrize(
    "receive", [at_once, after_a_checkpoint, inside_own_scope], ids=lambda f: f.__name__
)
async def test_a_message_in_time_is_returned(receive: Receive) -> None:
    assert await receive_within(receive, 30) == BODY
    assert await receive_within(lambda: NotACoroutine(receive), 30) == BODY


@pytest.mark.parametrize("receive", [never, never_inside_own_scope], ids=lambda f: f.__name__)
async def test_a_receive_that_waits_too_long_gives_none(receive: Receive) -> None:
    assert await receive_within(receive, 0.01) is None
    assert await receive_within(lambda: NotACoroutine(receive), 0.01) is None
    # The task is still usable: no stray cancellation left behind.
    await anyio.lowlevel.checkpoint()
    assert await receive_within(after_a_checkpoint, 30) == BODY


async def test_errors_before_and_after_suspending_reach_the_caller() -> None:
    async def fails_at_once() -> Message:
        raise OSError("gone")

    async def fails_after_waiting() -> Message:
        await anyio.lowlevel.checkpoint()
        raise OSError("gone later")

    async def own_timeout() -> Message:
        await anyio.lowlevel.checkpoint()
        raise TimeoutError("the receive's own")

    with pytest.raises(OSError, match="gone"):
        await receive_within(fails_at_once, 30)
    with pytest.raises(OSError, match="gone later"):
        await receive_within(fails_after_waiting, 30)
    with pytest.raises(TimeoutError, match="the receive's own"):
        await receive_within(own_timeout, 30)


@pytest.mark.parametrize("receive", [never, never_inside_own_scope], ids=lambda f: f.__name__)
async def test_cancellation_from_outside_is_not_a_timeout(receive: Receive) -> None:
    results: list[Message | None] = []

    async def waiter() -> None:
        results.append(await receive_within(receive, 30))

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    assert results == []  # cancelled, not returned as a timeout
    with anyio.move_on_after(0.01) as outer:
        await receive_within(receive, 30)
    assert outer.cancelled_caught


async def test_the_receive_is_closed_when_its_waiter_is_dropped() -> None:
    closed: list[bool] = []

    async def tracked() -> Message:
        try:
            await anyio.sleep_forever()
        finally:
            closed.append(True)
        raise AssertionError("unreachable")

    waiting = receive_within(tracked, 30)
    try:
        waiting.send(None)  # runs up to the first suspension
    except RuntimeError:  # trio refuses to run outside its task machinery
        pytest.skip("stepping a coroutine by hand needs an asyncio-style yield")
    waiting.close()
    assert closed == [True]


# -- through RequestBuffering ----------------------------------------------------------


def receive_of(messages: list[Message], wait: Callable[[], Awaitable[None]]) -> Receive:
    """Each message after ``wait()``; then nothing until cancelled (a quiet client)."""
    queue = list(messages)

    async def receive() -> Message:
        await wait()
        if queue:
            return queue.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def no_wait() -> None:
    return None


async def checkpoint_in_scope() -> None:
    with anyio.CancelScope():
        await anyio.lowlevel.checkpoint()


async def call(app: Any, receive: Receive) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    with anyio.fail_after(10):
        await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


#: Both buffering modes, with a receive that returns at once, waits, or waits in its own scope.
EVERY_MODE_AND_WAIT = pytest.mark.parametrize(
    ("mode", "wait"),
    [
        pytest.param(mode, wait, id=f"{mode}-{name}")
        for mode in ("buffer", "stream")
        for name, wait in (
            ("now", no_wait),
            ("wait", anyio.lowlevel.checkpoint),
            ("scoped", checkpoint_in_scope),
        )
    ],
)


@EVERY_MODE_AND_WAIT
async def test_body_in_chunks_reaches_the_app(mode: str, wait: Callable[[], Any]) -> None:
    messages = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    app = RequestBuffering(InnerApp(echo=True).asgi(), mode=mode, body_timeout=30)  # type: ignore[arg-type]
    status, body = await call(app, receive_of(messages, wait))
    assert status == 200
    assert b"abcd" in body


@EVERY_MODE_AND_WAIT
async def test_stall_after_a_chunk_is_408(mode: str, wait: Callable[[], Any]) -> None:
    messages = [{"type": "http.request", "body": b"ab", "more_body": True}]
    app = RequestBuffering(InnerApp(echo=True).asgi(), mode=mode, body_timeout=0.02)  # type: ignore[arg-type]
    status, body = await call(app, receive_of(messages, wait))
    assert status == 408
    assert b"stalled after 2 bytes" in body


@EVERY_MODE_AND_WAIT
async def test_disconnect_mid_body(mode: str, wait: Callable[[], Any]) -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.disconnect"},
    ]
    app = RequestBuffering(InnerApp(echo=True).asgi(), mode=mode, body_timeout=30)  # type: ignore[arg-type]
    status, _ = await call(app, receive_of(messages, wait))
    # Buffering answers 400 itself; streaming passes the disconnect to the app,
    # which answers as it likes (this one with 200), waiting or not.
    assert status == (400 if mode == "buffer" else 200)
