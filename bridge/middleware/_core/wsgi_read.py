"""How the WSGI driver bounds a read of ``wsgi.input`` in time, per server.

A WSGI read blocks inside the server, so what a read timeout can do depends on
what the server exposes. The strategy is chosen once per request from the
environ:

* gunicorn puts the client socket in ``environ["gunicorn.socket"]``: the read
  runs with a timeout on that socket (restored afterwards, unless the read
  timed out). No thread; a timeout bounds each ``recv``, i.e. the wait between
  two pieces of the body, which is what nginx's ``client_body_timeout`` bounds.
* waitress (``environ["waitress.client_disconnected"]``) has read and buffered
  the whole body before calling the app (its own ``channel_timeout`` applies
  while it does), so a read never waits for the client: a plain read.
* a body already in memory (an ``io.BytesIO``, as test clients and some
  servers pass it, or bridge's WsgiToAsgi input once the whole body has
  arrived, the usual case for a small body): a read cannot wait, so a plain read.
* bridge's WsgiToAsgi input mid-body: each ``read`` becomes a ``read1`` (one
  received piece) in a worker thread abandoned at the timeout, so a timeout
  bounds the wait for the next piece, as on a socket, and a client dripping
  bytes within it is not taken for a stalled one (a ``read(65536)`` would wait
  for the whole body).
* anything else (wsgiref, uWSGI, mod_wsgi): the read runs in a worker thread
  that is abandoned at the timeout; that thread ends when the server closes
  the connection.

Added by the buffering middleware (issue 6) strictly on top of the driver's
own ``timed_read``, which stays the fallback.
"""

from __future__ import annotations

import functools
import io
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from bridge._http.wsgi_input import WsgiInput
from bridge.middleware._core.exchange import BodyTimeout

__all__ = ("TimedRead", "piecewise_read", "plain_read", "socket_timed_read", "timed_reader")

#: ``timed(read, size, timeout)``: ``read(size)`` bounded by ``timeout`` seconds.
TimedRead: TypeAlias = Callable[[Callable[[int], bytes], int, float], bytes]


def socket_timed_read(
    sock: socket.socket, read: Callable[[int], bytes], size: int, timeout: float
) -> bytes:
    """``read(size)`` with ``timeout`` on the client socket under it (BodyTimeout after)."""
    previous = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        data = read(size)
    except TimeoutError:
        # The timeout stays on the socket: the connection is being given up, and if
        # the server reads on (to drain the body for keep-alive), a client that
        # stays silent is dropped after the same timeout instead of never.
        raise BodyTimeout(f"no request body within {timeout:g} s") from None
    except BaseException:
        sock.settimeout(previous)
        raise
    sock.settimeout(previous)
    return data


def plain_read(read: Callable[[int], bytes], size: int, timeout: float) -> bytes:
    """``read(size)`` for a body the server has already buffered."""
    return read(size)


def piecewise_read(
    stream: WsgiInput,
    fallback: TimedRead,
    read: Callable[[int], bytes],
    size: int,
    timeout: float,
) -> bytes:
    """``stream.read(size)`` as ``stream.read1(size)`` bounded by ``fallback``; other
    methods (``readline``) as they are."""
    if read == stream.read:
        read = stream.read1
    return fallback(read, size, timeout)


def timed_reader(environ: Mapping[str, Any], fallback: TimedRead) -> TimedRead:
    """The cheapest honest way to bound reads of this environ's ``wsgi.input``."""
    sock = environ.get("gunicorn.socket")
    if sock is not None and callable(getattr(sock, "settimeout", None)):
        return functools.partial(socket_timed_read, sock)
    if "waitress.client_disconnected" in environ:
        return plain_read
    stream = environ.get("wsgi.input")
    if type(stream) is io.BytesIO:
        return plain_read
    if type(stream) is WsgiInput:
        return (
            plain_read if stream.complete else functools.partial(piecewise_read, stream, fallback)
        )
    return fallback
