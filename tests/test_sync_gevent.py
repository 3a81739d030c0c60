"""bridge under gevent's ``monkey.patch_all()`` (issue 13 items 1 and 1b).

With threading monkey-patched, a "thread" is a greenlet on the one OS thread, while
asyncio tracks the running loop per OS thread: bridge's loops must run on real OS
threads, and a greenlet waiting for one (in ``async_to_sync``, or for an ``AsgiToWsgi``
response) must let the other greenlets run. Monkey-patching is process-wide, so each
check runs in a fresh interpreter (a script that prints what it saw as JSON) or a real
gevent server; the rest of the suite stays unpatched. Nothing here asserts on time:
concurrency shows as the order of recorded events.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import IN_CI, PYTHON, ROOT, Server, free_port, start_server

if IN_CI:  # the test extra installs gevent: never skip silently there
    importlib.import_module("gevent")
else:
    pytest.importorskip("gevent")

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import asyncio, json, sys
import gevent
from bridge import async_to_sync, sync_to_async
"""
#: bridge, anyio and asyncio imported before gevent patches: gunicorn's --preload
IMPORTED_FIRST = "import bridge, anyio.from_thread, asyncio, queue, threading\n"
ORDERS = pytest.mark.parametrize("imported_first", [False, True], ids=["patched", "preloaded"])


def _run(body: str, *, imported_first: bool = False) -> dict[str, object]:
    script = (IMPORTED_FIRST if imported_first else "") + PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [PYTHON, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


REPEATED = """
async def doubled(value):
    await asyncio.sleep(0)
    return value * 2

answers = [async_to_sync(doubled)(n) for n in range(3)]
answers += [async_to_sync(doubled, force_new_loop=True)(n) for n in range(3)]
from asgiref.sync import async_to_sync as asgiref_async_to_sync
answers.append(asgiref_async_to_sync(doubled)(5))  # after bridge's loop has run
answers.append(async_to_sync(doubled)(6))
print(json.dumps({"answers": answers}))
"""


@ORDERS
def test_async_to_sync_works_on_every_call(imported_first: bool) -> None:
    seen = _run(REPEATED, imported_first=imported_first)
    assert seen["answers"] == [0, 2, 4] * 2 + [10, 12]


NAPS = """
events = []

async def nap(name):
    events.append(f"start {name}")
    await asyncio.sleep(1)
    events.append(f"end {name}")
    return name

def hello():
    while "start a" not in events or "start b" not in events:
        gevent.sleep(0.01)
    events.append("hello")

async_to_sync(asyncio.sleep)(0)  # not the first call in this process: that one always worked
greenlets = [gevent.spawn(async_to_sync(nap), name) for name in "ab"]
greenlets.append(gevent.spawn(hello))
gevent.joinall(greenlets, raise_error=True)
print(json.dumps({"events": events, "answers": [g.value for g in greenlets[:2]]}))
"""


@ORDERS
def test_two_greenlets_sleep_together_while_a_third_runs(imported_first: bool) -> None:
    """Two ``async_to_sync(asyncio.sleep(1))`` calls overlap; another greenlet runs meanwhile."""
    seen = _run(NAPS, imported_first=imported_first)
    events = seen["events"]
    assert isinstance(events, list)
    assert seen["answers"] == ["a", "b"]
    assert sorted(events[:2]) == ["start a", "start b"], events  # both asleep at once
    assert events[2] == "hello", events  # and the hub ran a greenlet before either woke
    assert sorted(events[3:]) == ["end a", "end b"], events


ROUND_TRIPS = """
import anyio.to_thread

def in_thread(value):
    return value + 1

async def through_a_thread(value):
    return await sync_to_async(in_thread)(value)

def back_to_the_loop(value):  # in anyio's worker: a greenlet on the loop's OS thread
    return async_to_sync(through_a_thread)(value)

async def through_anyio(value):
    return await anyio.to_thread.run_sync(back_to_the_loop, value)

async def misuse():
    return async_to_sync(through_a_thread)(0)  # blocks the loop: still refused

answers = [async_to_sync(through_a_thread)(n) for n in range(3)]
answers.append(async_to_sync(through_anyio)(10))
try:
    async_to_sync(misuse)()
except RuntimeError as error:
    answers.append(str(error).split(" (")[0])
print(json.dumps({"answers": answers}))
"""


@ORDERS
def test_round_trips_between_greenlets_threads_and_the_loop(imported_first: bool) -> None:
    seen = _run(ROUND_TRIPS, imported_first=imported_first)
    refused = "async_to_sync() cannot run in a thread whose event loop is running"
    assert seen["answers"] == [1, 2, 3, 11, refused]


REFUSED_BACKENDS = """
async def doubled(value):
    return value * 2

seen = []
for options in (
    {"backend": "trio"},
    {"backend": "trio", "force_new_loop": True},
    {"backend": "asyncio+uvloop", "force_new_loop": True},
):
    try:
        async_to_sync(doubled, **options)(1)
    except RuntimeError as error:
        seen.append(str(error))

from wsgiref.util import setup_testing_defaults
from bridge import AsgiToWsgi

async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"never sent"})

environ = {}
setup_testing_defaults(environ)
try:
    AsgiToWsgi(asgi_app, backend="trio", lifespan="off")(environ, print)
except RuntimeError as error:
    seen.append(str(error))
print(json.dumps({"errors": seen}))
"""


def test_trio_and_uvloop_are_refused_with_a_message_that_says_what_to_use() -> None:
    """trio cannot run under patch_all(), and anyio.to_thread would hang on uvloop."""
    errors = _run(REFUSED_BACKENDS)["errors"]
    assert isinstance(errors, list)
    backends = ["trio", "trio", "asyncio+uvloop", "trio"]
    assert len(errors) == len(backends)
    for error, backend in zip(errors, backends, strict=True):
        assert f"the {backend} backend cannot run under gevent" in error
        assert "use backend='asyncio'" in error


# -- real gevent servers -----------------------------------------------------------------

APP = "tests.apps.gevent_apps:app"


def _gevent_pywsgi(port: int) -> list[str]:
    return [PYTHON, "-m", "tests.apps.matrix_gevent", str(port), APP]


def _gunicorn_gevent_preload(port: int) -> list[str]:
    bind = f"127.0.0.1:{port}"
    return [PYTHON, "-m", "gunicorn", "-b", bind, "-w", "1", "-k", "gevent", "--preload", APP]


SERVERS = {"gevent-pywsgi": _gevent_pywsgi, "gunicorn-gevent-preload": _gunicorn_gevent_preload}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    port = free_port()
    running = start_server(SERVERS[request.param](port), port)
    try:
        yield running
    finally:
        running.stop()


def _events(client: httpx.Client) -> list[str]:
    return [event for event in client.get("/events").text.split(",") if event]


@pytest.mark.server
@pytest.mark.parametrize("prefix", ["", "/asgi"], ids=["async_to_sync", "AsgiToWsgi"])
def test_waiting_requests_let_the_server_answer_others(server: Server, prefix: str) -> None:
    """Two requests that wait on bridge's loop overlap, and ``/hello`` is answered meanwhile.

    Each nap ends early only once the other nap has started and ``/hello`` was
    answered; a greenlet that blocked its OS thread while waiting would stop both.
    """
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/warm").status_code == 200  # the naps are not the first calls
        with ThreadPoolExecutor(2) as pool:
            naps = [pool.submit(client.get, f"{prefix}/nap/{a}/{b}") for a, b in ("ab", "ba")]
            for _ in range(1500):  # bounded: each nap gives up after ~10 s
                if {"start a", "start b"} <= set(_events(client)):
                    break
                time.sleep(0.01)
            hello = client.get("/hello")
            answers = [(nap.result().status_code, nap.result().text) for nap in naps]
        events = _events(client)
    assert (hello.status_code, hello.text) == (200, "hello")
    assert answers == [(200, "a"), (200, "b")]
    ends = [events.index("end a"), events.index("end b")]
    assert max(events.index("start a"), events.index("start b")) < min(ends), events
    assert events.index("hello") < min(ends), events
