"""Per-server read timeouts of the WSGI driver (bridge.middleware._wsgi_read)."""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator

import pytest

from bridge.middleware import BodyTimeout
from bridge.middleware._wsgi_driver import timed_read
from bridge.middleware._wsgi_read import plain_read, socket_timed_read, timed_reader


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def test_socket_timed_read_reads_then_times_out_and_restores(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(b"abc")
    assert socket_timed_read(server, server.recv, 3, 5.0) == b"abc"
    with pytest.raises(BodyTimeout, match=r"no request body within 0\.05 s"):
        socket_timed_read(server, server.recv, 3, 0.05)
    assert server.gettimeout() is None  # blocking again, as the server left it


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
