"""A long ``response_body`` tail is sent next to the app: its failures and cancellation.

The ASGI driver sends a tail over INLINE_FLUSH from a task beside the app (a plain
task made on demand on asyncio, a task group on trio); both must behave like a
task group around the app. Every test runs on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bridge.middleware import Exchange, Middleware, RequestHead
from bridge.testing import Request

pytestmark = pytest.mark.anyio

TAIL = b"x" * 40_000  # more than INLINE_FLUSH: sent by a task


class HoldAll(Middleware):
    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _HoldAll(head, now)


class _HoldAll(Exchange):
    def response_body(self, chunk: bytes, more: bool) -> Iterable[bytes]:
        return () if more else (TAIL,)


async def receive() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def app_that_lingers(finished: list[str]) -> Any:
    """Sends its whole response, then keeps running (a background task)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("app")

    return app


async def test_a_failing_tail_cancels_the_app_and_is_raised() -> None:
    finished: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            raise OSError("client gone")

    with anyio.fail_after(10), pytest.raises(OSError, match="client gone"):
        await HoldAll(app_that_lingers(finished))(Request().scope(), receive, send)
    assert finished == ["app"]


async def test_cancelling_the_request_cancels_the_tail() -> None:
    finished: list[str] = []
    tail_started = anyio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            tail_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                finished.append("tail")

    mw = HoldAll(app_that_lingers(finished))
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(mw, Request().scope(), receive, send)
            await tail_started.wait()
            group.cancel_scope.cancel()
    assert sorted(finished) == ["app", "tail"]


async def test_the_request_ends_only_when_the_tail_is_sent() -> None:
    sent: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await anyio.lowlevel.checkpoint()  # the tail yields: the app returns meanwhile
            sent.append(message["body"])

    with anyio.fail_after(10):
        await HoldAll(app)(Request().scope(), receive, send)
    assert b"".join(sent) == TAIL
    assert sent[-1] == b""
