"""Websocket limits through uvicorn and hypercorn on 127.0.0.1, with a real client (wsproto).

uvicorn and hypercorn offer the websocket denial response extension, so a refused
handshake is answered with the limiter's own HTTP response (429 with the
quota fields, 503 from ConcurrencyLimit) instead of a bare 403. An admitted
handshake's 101 carries RateLimit's fields (sent as ``websocket.accept`` headers).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from wsproto import WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.conftest import PYTHON, RunServer, Server

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]


APP = "tests.ratelimit.websocket_apps:app"


def uvicorn(port: int) -> list[str]:
    return [
        PYTHON, "-m", "uvicorn", APP, "--port", str(port), "--log-level", "warning",
        "--ws", "wsproto", "--lifespan", "off",
    ]  # fmt: skip


def hypercorn(port: int) -> list[str]:
    return [PYTHON, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}"]


@dataclass
class Handshake:
    """What the server answered: accepted (then ``messages``), or refused with a response."""

    accepted: bool
    status: int = 101
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    messages: list[str] = field(default_factory=list)


class Client:
    """One websocket connection over a blocking socket, driven by wsproto."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target=path)))
        self.events = self._events()
        self.result = self._handshake()

    def _events(self) -> Iterator[Event]:
        """Events as they arrive; one read may carry several (the accept and a message)."""
        while True:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            yield from self.ws.events()

    def _handshake(self) -> Handshake:
        refused: Handshake | None = None
        for event in self.events:
            if isinstance(event, AcceptConnection):
                return Handshake(True, headers=dict(event.extra_headers))
            if isinstance(event, RejectConnection):
                refused = Handshake(False, event.status_code, dict(event.headers))
                if not event.has_body:
                    return refused
            if isinstance(event, RejectData):
                assert refused is not None
                refused.body += event.data
                if event.body_finished:
                    return refused
        raise AssertionError("unreachable: the events never end")

    def receive(self) -> str | None:
        """The next text message; None when the server closed the connection."""
        for event in self.events:
            if isinstance(event, TextMessage):
                return event.data
            if isinstance(event, CloseConnection):
                return None
        raise AssertionError("unreachable: the events never end")

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(Message(data=text)))

    def close(self) -> None:
        """The closing handshake: our close frame, then the server's."""
        self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        while self.receive() is not None:
            pass
        self.sock.close()


@contextmanager
def connected(server: Server, path: str) -> Iterator[Client]:
    client = Client(server.port, path)
    try:
        yield client
    finally:
        client.sock.close()


@pytest.mark.parametrize("argv", [uvicorn, hypercorn], ids=["uvicorn", "hypercorn"])
def test_handshakes_over_the_limit_get_the_429(
    run_server: RunServer, argv: Callable[[int], list[str]]
) -> None:
    server = run_server(argv)
    seen = []
    fields = []
    for _ in range(3):
        with connected(server, "/ws/handshake") as client:
            assert client.result.accepted
            assert client.result.headers[b"ratelimit-policy"] == b'"3/minute";q=3;w=60'
            fields.append(client.result.headers[b"ratelimit"].split(b";r=")[1][:1])
            seen.append(client.receive())
    assert seen == ["2 left", "1 left", "0 left"]  # the decision, read by the endpoint
    assert fields == [b"2", b"1", b"0"]  # and its fields, on the 101 (websocket.accept)
    with connected(server, "/ws/handshake") as client:
        refused = client.result
    assert not refused.accepted
    assert refused.status == 429
    assert refused.headers[b"ratelimit-policy"] == b'"3/minute";q=3;w=60'
    assert refused.headers[b"ratelimit"] == b'"3/minute";r=0;t=60'
    assert int(refused.headers[b"retry-after"]) == 20
    assert refused.body == b"Too Many Requests: retry in 20 seconds.\n"


@pytest.mark.parametrize("argv", [uvicorn, hypercorn], ids=["uvicorn", "hypercorn"])
def test_refused_handshakes_count_toward_the_limit(
    run_server: RunServer, argv: Callable[[int], list[str]]
) -> None:
    """count_when=(403,): a handshake the app closes before accept counts, an accepted one
    does not; after two refusals even the right token gets the 429."""
    server = run_server(argv)
    for _ in range(3):
        with connected(server, "/ws/login?token=secret") as client:
            assert client.result.accepted
            assert client.receive() == "welcome"
    for _ in range(2):
        with connected(server, "/ws/login?token=guess") as client:
            assert not client.result.accepted
            assert client.result.status == 403  # the server's answer to a close before accept
    with connected(server, "/ws/login?token=secret") as client:
        assert not client.result.accepted
        assert client.result.status == 429
        assert client.result.headers[b"ratelimit"].startswith(b'"2/minute";r=0;')


def test_open_connections_are_capped_until_one_closes(run_server: RunServer) -> None:
    server = run_server(uvicorn)
    first, second = Client(server.port, "/ws/chat"), Client(server.port, "/ws/chat")
    try:
        assert first.result.accepted
        assert second.result.accepted
        first.send("ping")
        assert first.receive() == "ping"
        with connected(server, "/ws/chat") as third:
            assert not third.result.accepted
            assert third.result.status == 503
            assert third.result.headers[b"retry-after"] == b"1"
        first.close()
        # The slot is given back once the endpoint has returned, just after the closing
        # handshake: the next connection is admitted within a few tries.
        again = None
        for _ in range(100):
            again = Client(server.port, "/ws/chat")
            if again.result.accepted:
                break
            again.sock.close()
            time.sleep(0.02)
        assert again is not None
        assert again.result.accepted, "the slot never came back"
        again.send("back")
        assert again.receive() == "back"
        with connected(server, "/ws/chat") as fourth:  # second and again are open
            assert fourth.result.status == 503
        again.close()
    finally:
        for client in (first, second):
            client.sock.close()
