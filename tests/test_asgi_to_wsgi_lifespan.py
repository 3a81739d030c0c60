"""AsgiToWsgi lifespan: once per process, state copied into requests, failures and modes."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from bridge import AsgiToWsgi
from tests.apps.asgi_apps import TEXT, Receive, Send, hello

from .asgi_to_wsgi_helpers import errors, get


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class LifespanApp:
    """Records lifespan events; answers each request with the state it sees."""

    def __init__(self, *, fail: str = "", gate: threading.Event | None = None) -> None:
        self.events: list[str] = []
        self.fail = fail
        self.gate = gate

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        self.events.append("request")
        state = scope["state"]
        body = json.dumps(dict(state)).encode()
        state["mutated"] = True  # must not leak into the next request
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "lifespan.startup":
                if self.gate is not None:
                    while not self.gate.is_set():  # noqa: ASYNC110 - set by the test thread
                        await anyio.sleep(0.002)
                if self.fail == "raise":
                    raise RuntimeError("database unreachable")
                if self.fail == "message":
                    await send({"type": "lifespan.startup.failed", "message": "no config"})
                    return
                scope["state"]["db"] = "connected"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture
def closing() -> Iterator[list[AsgiToWsgi]]:
    adapters: list[AsgiToWsgi] = []
    yield adapters
    for adapter in adapters:
        adapter.close()


def test_startup_once_state_copied_shutdown_at_close(backend: str) -> None:
    app = LifespanApp()
    adapter = AsgiToWsgi(app, lifespan="on", backend=backend)
    assert app.events == []  # lazily: nothing before the first request
    first = json.loads(get(adapter)[1])
    second = json.loads(get(adapter)[1])
    assert first == second == {"db": "connected"}
    adapter.close()
    adapter.close()
    assert app.events == ["lifespan.startup", "request", "request", "lifespan.shutdown"]


def test_startup_once_under_16_threads(backend: str, closing: list[AsgiToWsgi]) -> None:
    app = LifespanApp()
    adapter = AsgiToWsgi(app, lifespan="on", backend=backend)
    closing.append(adapter)
    codes: list[int] = []

    def worker() -> None:
        for _ in range(10):
            codes.append(get(adapter)[0].code)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 160
    assert app.events.count("lifespan.startup") == 1
    assert app.events[0] == "lifespan.startup"


def test_request_during_startup_waits_for_it(backend: str, closing: list[AsgiToWsgi]) -> None:
    gate = threading.Event()
    app = LifespanApp(gate=gate)
    adapter = AsgiToWsgi(app, lifespan="on", backend=backend)
    closing.append(adapter)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(get(adapter)[1])) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert "request" not in app.events
    gate.set()
    for thread in threads:
        thread.join(30)
    assert results == [b'{"db": "connected"}'] * 3
    assert app.events[:2] == ["lifespan.startup", "request"]


@pytest.mark.parametrize(
    ("fail", "logged"),
    [
        pytest.param("raise", "RuntimeError: database unreachable", id="raises"),
        pytest.param("message", "lifespan startup failed: no config", id="startup-failed"),
    ],
)
def test_failed_startup_with_on_answers_500(
    backend: str, caplog: pytest.LogCaptureFixture, fail: str, logged: str
) -> None:
    with AsgiToWsgi(LifespanApp(fail=fail), lifespan="on", backend=backend) as adapter:
        assert get(adapter)[0].code == 500
        assert get(adapter)[0].code == 500
    lines = errors(caplog)
    assert len(lines) == 3  # the startup failure, then one line per request
    assert all(logged in line for line in lines)


def test_startup_failed_message_fails_with_auto_too(backend: str) -> None:
    with AsgiToWsgi(LifespanApp(fail="message"), backend=backend) as adapter:
        assert get(adapter)[0].code == 500


def test_auto_falls_back_when_the_app_has_no_lifespan(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.asgi_to_wsgi")
    with AsgiToWsgi(hello, lifespan="auto", backend=backend) as adapter:
        assert get(adapter)[1] == b"Hello, world!"
        assert get(adapter)[1] == b"Hello, world!"
    assert errors(caplog) == []
    infos = [r.getMessage() for r in caplog.records if r.name == "bridge.asgi_to_wsgi"]
    assert len(infos) == 1
    assert "running without lifespan" in infos[0]


def test_off_sends_no_lifespan_events(backend: str) -> None:
    app = LifespanApp()
    with AsgiToWsgi(app, lifespan="off", backend=backend) as adapter:
        assert json.loads(get(adapter)[1]) == {}
    assert app.events == ["request"]


def test_startup_timeout_answers_500(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    adapter = AsgiToWsgi(
        LifespanApp(gate=gate), lifespan="on", backend=backend, startup_timeout=0.05
    )
    try:
        assert get(adapter)[0].code == 500
        assert "did not finish within" in errors(caplog)[0]
    finally:
        gate.set()
        adapter.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_runs_its_own_startup(backend: str, tmp_path: Any) -> None:
    # The DeprecationWarning about fork() with threads is exactly the situation under test.
    app = LifespanApp()
    adapter = AsgiToWsgi(app, lifespan="on", backend=backend)
    try:
        assert get(adapter)[0].code == 200  # the parent's loop and lifespan are running
        report = tmp_path / "child.txt"
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                recorder, body = get(adapter)
                adapter.close()
                report.write_text(f"{recorder.code} {body.decode()} {app.events}")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        code, state, events = report.read_text().split(" ", 2)
        assert (code, state) == ("200", '{"db":')
        # the child ran startup and shutdown again in its own process
        assert events.count("lifespan.startup") == 2
        assert events.count("lifespan.shutdown") == 1
    finally:
        adapter.close()
    assert app.events.count("lifespan.shutdown") == 1
