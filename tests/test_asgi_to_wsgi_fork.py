"""AsgiToWsgi after ``os.fork()``: an adapter built in a parent works in the child.

This is what ``gunicorn --preload`` does (the server tests check it end to end);
here the child is forked directly, so what it does after the fork can be checked
precisely. The child reports through its exit status.
"""

from __future__ import annotations

import os
import subprocess
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


# A worker's normal exit runs the interpreter's finalisation, which os._exit skips: so this
# runs as its own program, whose forked child serves a request and exits like a worker.
_WORKER_EXIT = """
import os, sys
from werkzeug.test import Client
from bridge import AsgiToWsgi
from tests.apps.asgi_apps import respond

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await respond(send, 200, str(os.getpid()).encode())

backend, parent_served = sys.argv[1], sys.argv[2] == "served"
adapter = AsgiToWsgi(app, backend=backend)
client = Client(adapter)
if parent_served:  # the master served through bridge before forking, as with --preload
    assert client.get("/").data == str(os.getpid()).encode()
pid = os.fork()
if pid == 0:
    assert client.get("/").data == str(os.getpid()).encode()
    sys.exit(0)  # a worker's normal exit: the interpreter finalises what it holds
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("parent_served", [True, False], ids=["parent-served", "parent-idle"])
def test_a_forked_worker_exits_without_finalising_the_parents_loop(
    backend: str, parent_served: bool
) -> None:
    """Nothing of the parent's loop machinery is finalised in the child: no
    ``Exception ignored in: <generator object start_blocking_portal>`` at its exit."""
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-c",
            _WORKER_EXIT,
            backend,
            "served" if parent_served else "idle",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "child exit 0", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
