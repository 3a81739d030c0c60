"""Per-server read timeouts of the WSGI driver (bridge.middleware._core.wsgi_read)."""

from __future__ import annotations

import functools
import io
import socket
from collections.abc import Iterator

import pytest

from bridge._http.wsgi_input import WsgiInput
from bridge.middleware import BodyTimeout
from bridge.middleware._core.wsgi_driver import timed_read
from bridge.middleware._core.wsgi_read import (
    piecewise_read,
    plain_read,
    socket_timed_read,
    timed_reader,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def test_socket_timed_read_restores_after_a_read_and_keeps_after_a_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(b"abc")
    assert socket_timed_read(server, server.recv, 3, 5.0) == b"abc"
    assert server.gettimeout() is None  # blocking again, as the server left it
    with pytest.raises(BodyTimeout, match=r"no request body within 0\.05 s"):
        socket_timed_read(server, server.recv, 3, 0.05)
    # After a timeout it stays, so the server's own drain of the body gives up too.
    assert server.gettimeout() == 0.05


def test_socket_timed_read_restores_a_previous_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.settimeout(7.0)
    client.sendall(b"x")
    assert socket_timed_read(server, server.recv, 1, 1.0) == b"x"
    assert server.gettimeout() == 7.0


def test_strategy_per_server(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    gunicorn = timed_reader({"gunicorn.socket": server}, timed_read)
    assert isinstance(gunicorn, functools.partial)
    assert gunicorn.func is socket_timed_read
    assert timed_reader({"waitress.client_disconnected": lambda: False}, timed_read) is plain_read
    assert timed_reader({}, timed_read) is timed_read
    assert timed_reader({"gunicorn.socket": object()}, timed_read) is timed_read


def test_a_body_already_in_memory_is_read_plainly() -> None:
    # Such a read cannot wait for the client, so it needs no thread and no timeout.
    assert timed_reader({"wsgi.input": io.BytesIO(b"abc")}, timed_read) is plain_read
    whole = WsgiInput(b"abc", None, 3)  # WsgiToAsgi once the whole body has arrived
    assert timed_reader({"wsgi.input": whole}, timed_read) is plain_read


def test_a_body_still_arriving_or_behind_a_socket_is_read_in_a_thread() -> None:
    pieces = iter([b"cd", None])
    arriving = WsgiInput(b"ab", lambda: next(pieces), None)  # WsgiToAsgi mid-body
    strategy = timed_reader({"wsgi.input": arriving}, timed_read)
    assert isinstance(strategy, functools.partial)
    assert strategy.func is piecewise_read
    # Each timed read waits for one piece, never for the whole body (issue 13 item 8).
    assert strategy(arriving.read, 65536, 5.0) == b"ab"
    assert strategy(arriving.read, 65536, 5.0) == b"cd"
    assert strategy(arriving.read, 65536, 5.0) == b""
    buffered = io.BufferedReader(io.BytesIO(b"abc"))  # like wsgiref's socket file
    assert timed_reader({"wsgi.input": buffered}, timed_read) is timed_read
