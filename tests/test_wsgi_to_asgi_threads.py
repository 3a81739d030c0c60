"""WsgiToAsgi's worker threads: bridge's own hand-off (bridge._loop.crossing.run_in_worker).

What an app running in them may rely on, on asyncio and trio: ``anyio.from_thread`` and
``bridge.async_to_sync`` reach the request's event loop; the adapter's limiter (anyio's
default thread limiter unless one is injected) holds a token while the app runs, and a
request cancelled while it waits for a token leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from functools import partial
from wsgiref.types import StartResponse

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

import bridge
from bridge._http.types import Environ
from bridge._loop.handoff import HandoffQueue
from tests.apps import wsgi_apps
from tests.asgi_driver import Exchange
from tests.test_wsgi_to_asgi import drive

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=["learns", "expects-streaming"])
def _adapter_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "expects-streaming":
        monkeypatch.setattr(bridge.WsgiToAsgi, "_expect_streaming", True)


def current_loop_identity() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        import trio

        return trio.lowlevel.current_trio_token()


async def where() -> object:
    return current_loop_identity()


async def test_anyio_from_thread_in_the_app_reaches_the_loop() -> None:
    """As in ``anyio.to_thread`` workers: ``from_thread.run`` needs no ``token=``."""
    seen: list[object] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        seen.append(anyio.from_thread.run(where))
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        seen.append(anyio.from_thread.run_sync(current_loop_identity))
        yield b"b"

    exchange = await drive(app)
    assert exchange.body == b"ab"
    assert seen == [current_loop_identity()] * 2


async def test_async_to_sync_in_the_app_runs_on_the_callers_loop() -> None:
    seen: list[object] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(bridge.async_to_sync(where)())
        return wsgi_apps.hello(environ, start_response)

    await drive(app)
    assert seen == [current_loop_identity()]


@pytest.mark.parametrize("injected", [False, True], ids=["default", "injected"])
async def test_the_app_runs_holding_a_token_of_the_limiter(injected: bool) -> None:
    limiter = anyio.CapacityLimiter(3) if injected else None
    held: list[float] = []

    def borrowed() -> float:
        return (limiter or anyio.to_thread.current_default_thread_limiter()).borrowed_tokens

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        held.append(anyio.from_thread.run_sync(borrowed))
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"x"
        held.append(anyio.from_thread.run_sync(borrowed))

    before = borrowed()
    await drive(app, limiter=limiter)
    assert held == [before + 1, before + 1]
    assert borrowed() == before


async def test_cancelled_while_waiting_for_a_token_leaves_nothing_behind() -> None:
    limiter = anyio.CapacityLimiter(1)
    release = threading.Event()
    calls: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        release.wait(20)
        return wsgi_apps.hello(environ, start_response)

    first = Exchange()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(drive, app, first, limiter=limiter))  # holds the only token
        with anyio.fail_after(20):
            while limiter.borrowed_tokens < 1:  # noqa: ASYNC110 - polls a limiter
                await anyio.sleep(0.01)
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(partial(drive, app, Exchange(), limiter=limiter))
            with anyio.fail_after(20):
                while limiter.statistics().tasks_waiting < 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            waiting.cancel_scope.cancel()
        assert limiter.statistics().tasks_waiting == 0
        release.set()
    assert calls == ["/"]
    assert first.body == b"Hello, world!"
    assert limiter.borrowed_tokens == 0


async def test_handoff_queue_put_many_waits_for_room_for_all() -> None:
    queue = HandoffQueue[bytes](4, len)
    second_put = threading.Event()

    def produce() -> None:
        queue.put_many_from_thread([b"", b"abc"])  # empty queue: fits
        queue.put_many_from_thread([b"de", b"f"])  # 3 + 3 > 4: waits for the loop
        second_put.set()
        queue.finish()

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, produce)
        first = await queue.get_all()
        assert first[0] == b""
        rest = first[1:] + await queue.get_all()
        while batch := await queue.get_all():
            rest += batch
    assert second_put.is_set()
    assert rest == [b"abc", b"de", b"f"]
