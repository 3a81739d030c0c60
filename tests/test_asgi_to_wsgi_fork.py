"""AsgiToWsgi after ``os.fork()``: an adapter built in a parent works in the child.

This is what ``gunicorn --preload`` does (the server tests check it end to end);
here the child is forked directly, so what it does after the fork can be checked
precisely. The child reports through its exit status.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn
from wsgiref.validate import validator

import anyio
import pytest
from werkzeug.test import Client

from bridge import AsgiToWsgi
from tests.apps.asgi_apps import Receive, Send, respond

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(check: Callable[[], None]) -> None:
    """Run ``check`` in a forked child; fail here if it raised there."""
    pid = os.fork()
    if pid == 0:
        _child(check)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the check failed in the child (see stderr)"


def _child(check: Callable[[], None]) -> NoReturn:
    code = 0
    try:
        check()
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("parent_served", [True, False], ids=["parent-served", "parent-idle"])
def test_close_in_a_forked_child_waits_for_its_background_work(
    backend: str, parent_served: bool
) -> None:
    release, finished = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await respond(send, 200, b"done")
        if scope["path"] == "/background":
            while not release.is_set():  # noqa: ASYNC110 - set by a thread, not on this loop
                await anyio.sleep(0.005)
            finished.set()

    adapter = AsgiToWsgi(app, lifespan="off", backend=backend)
    client = Client(validator(adapter))
    if parent_served:  # the parent's loop thread is running when it forks
        assert client.get("/", buffered=True).data == b"done"

    def check() -> None:
        assert client.get("/background", buffered=True).data == b"done"
        assert not finished.is_set()
        threading.Timer(0.05, release.set).start()
        adapter.close()  # waits for the background work (up to shutdown_timeout)
        assert finished.is_set(), "close() returned before the request's background work ended"

    try:
        in_child(check)
    finally:
        adapter.close()


def test_fork_during_lifespan_startup_does_not_block_the_child() -> None:
    """A parent thread is inside lifespan startup when the process forks: the child
    must run its own startup, not wait on the parent's (which it does not have)."""
    started, release = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            started.set()
            while not release.is_set():  # noqa: ASYNC110 - set by a thread, not on this loop
                await anyio.sleep(0.005)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send, 200, str(os.getpid()).encode())

    adapter = AsgiToWsgi(app, lifespan="on", startup_timeout=5)
    client = Client(validator(adapter))
    parent = threading.Thread(target=client.get, args=("/",), kwargs={"buffered": True})
    parent.start()
    try:
        assert started.wait(10)

        def check() -> None:
            release.set()  # the child's own startup completes at once
            response = client.get("/", buffered=True)
            assert (response.status_code, response.data) == (200, str(os.getpid()).encode())

        in_child(check)
    finally:
        release.set()
        parent.join(10)
        adapter.close()
