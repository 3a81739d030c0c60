"""Test a WSGI or ASGI app (or middleware stack) under both interfaces.

``call_wsgi(app, request)`` and ``call_asgi(app, request)`` send the same
:class:`Request` and return the same :class:`Result` type, so a test can
assert that a stack behaves identically under WSGI and ASGI::

    from bridge.testing import InnerApp, Request, call_asgi, call_wsgi

    inner = InnerApp(body=[b"hello"])
    wsgi = call_wsgi(SecurityHeaders(inner.wsgi()), Request(path="/"))
    asgi = call_asgi(SecurityHeaders(inner.asgi()), Request(path="/"))
    assert wsgi == asgi

The WSGI side always runs through ``wsgiref.validate.validator`` (around
the app you pass and around :meth:`InnerApp.wsgi`); the ASGI side through a
message-order checker that fails on any out-of-order or malformed message.
A request body may be sent in several chunks (``chunked=True`` sends no
Content-Length), may stall after some chunks (``stall_after``) or the client
may disconnect mid-body (``disconnect_after``). :class:`FakeClock` is a clock
to pass to a middleware's ``clock=`` option.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from wsgiref.validate import validator

import anyio
from asgiref.typing import HTTPScope

from bridge._http.paths import quote_path
from bridge._http.translate import BadRequest, environ_from_scope
from bridge._http.types import Environ, StartResponse, WsgiApp
from bridge._http.wsgi_input import ClientDisconnected
from bridge.middleware._core.heads import RequestHead, head_from_environ, head_from_scope
from bridge.wsgi_to_asgi import complete_lifespan

__all__ = (
    "AsgiProtocolError",
    "FakeClock",
    "InnerApp",
    "Request",
    "Result",
    "Seen",
    "acall_asgi",
    "call_asgi",
    "call_wsgi",
)

#: Environ / scope key where :class:`InnerApp` records what it saw.
SEEN_KEY: Final = "bridge-testing.seen"
Header = tuple[bytes, bytes]


class FakeClock:
    """A clock for ``clock=`` options: ``clock()`` is ``now``; ``advance(s)`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Request:
    """One request to send under either interface.

    ``body`` is bytes or a sequence of chunks. A Content-Length header is
    added unless ``chunked`` is true (then ``transfer-encoding: chunked`` is
    sent and the WSGI side reads until the end). ``stall_after=n``: after
    ``n`` chunks the body stops arriving for ``stall_seconds``;
    ``disconnect_after=n``: after ``n`` chunks the client goes away.
    """

    method: str = "GET"
    path: str = "/"
    query_string: bytes = b""
    headers: Sequence[Header] = ((b"host", b"testserver"),)
    body: bytes | Sequence[bytes] = b""
    chunked: bool = False
    root_path: str = ""
    raw_path: bytes | None = None
    scheme: str = "http"
    client: tuple[str, int] | None = ("127.0.0.1", 50000)
    server: tuple[str, int | None] | None = ("testserver", 80)
    http_version: str = "1.1"
    stall_after: int | None = None
    stall_seconds: float = 30.0
    disconnect_after: int | None = None

    def chunks(self) -> list[bytes]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)

    def body_ends(self) -> bool:
        """True when the body arrives whole: no stall or disconnect cuts it short."""
        count = len(self.chunks())
        return all(cut is None or cut > count for cut in (self.stall_after, self.disconnect_after))

    def scope(self) -> HTTPScope:
        """The ASGI ``http`` scope of this request (the WSGI environ is built from it)."""
        headers = [(bytes(k), bytes(v)) for k, v in self.headers]
        size = sum(len(chunk) for chunk in self.chunks())
        if self.chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif size or self.method in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", str(size).encode("ascii")))
        raw = self.raw_path
        if raw is None:
            raw = quote_path(self.path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": self.http_version,
            "method": self.method,
            "scheme": self.scheme,
            "path": self.path,
            "raw_path": raw,
            "query_string": self.query_string,
            "root_path": self.root_path,
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "extensions": {},
        }
        return cast("HTTPScope", scope)


@dataclass(frozen=True)
class Seen:
    """What the innermost :class:`InnerApp` saw: the head and the body it read."""

    head: RequestHead
    body: bytes
    body_error: str | None = None


@dataclass(frozen=True, eq=False)
class Result:
    """A response as the client got it, comparable across interfaces.

    ``headers`` are byte pairs as sent (names in the app's case: under WSGI a
    middleware keeps the spelling its user configured, ASGI names are lowercase);
    ``==`` compares header names case-insensitively, as HTTP does, and everything
    else exactly. ``error`` is ``"ExcType: message"`` when the app raised after the
    response started (the server would then cut the connection).
    """

    status: int
    headers: list[Header]
    body: bytes
    seen: Seen | None = None
    error: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self._compared() == other._compared()

    __hash__ = None  # type: ignore[assignment]  # mutable lists inside: not hashable

    def _compared(self) -> tuple[object, ...]:
        lowered = [(name.lower(), value) for name, value in self.headers]
        return (self.status, lowered, self.body, self.seen, self.error)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def header_values(self, name: bytes) -> list[bytes]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]


class AsgiProtocolError(AssertionError):
    """An ASGI app broke the message order or sent a malformed message."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- WSGI side -------------------------------------------------------------------


class _Input(io.RawIOBase):
    """``wsgi.input`` that replays the request's chunks, stalls or disconnects."""

    def __init__(self, request: Request, release: threading.Event) -> None:
        self._chunks = request.chunks()
        self._index = 0
        self._buffer = b""
        self._request = request
        self._release = release

    def _fill(self) -> bool:
        request = self._request
        if request.disconnect_after is not None and self._index >= request.disconnect_after:
            # As a real server does: a body cut short is an error, never a quiet EOF.
            raise ClientDisconnected("the client disconnected mid-body")
        if request.stall_after is not None and self._index >= request.stall_after:
            self._release.wait(request.stall_seconds)
            return False
        if self._index >= len(self._chunks):
            return False
        self._buffer += self._chunks[self._index]
        self._index += 1
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data, self._buffer = self._buffer, b""
            return data
        while not self._buffer and self._fill():
            pass
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self._buffer and self._fill():
            pass
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        data, self._buffer = self._buffer[:end], self._buffer[end:]
        return data

    def readable(self) -> bool:
        return True


def _environ(request: Request, release: threading.Event) -> Environ:
    environ = environ_from_scope(
        request.scope(), wsgi_input=_Input(request, release), wsgi_errors=sys.stderr
    )
    del environ["asgi.scope"]
    environ.setdefault("REMOTE_ADDR", "")
    return environ


def call_wsgi(app: WsgiApp, request: Request | None = None) -> Result:
    """Send ``request`` to the WSGI ``app`` (inside ``wsgiref.validate.validator``)."""
    request = request or Request()
    release = threading.Event()
    environ = _environ(request, release)
    if environ["REMOTE_ADDR"] == "":
        del environ["REMOTE_ADDR"]
    seen: list[Seen] = []
    environ[SEEN_KEY] = seen
    captured: list[tuple[str, list[tuple[str, str]]]] = []
    body: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append((status, headers))
        return body.append  # legacy write(): part of the body, in order

    error: str | None = None
    try:
        iterable = validator(cast(Any, app))(environ, start_response)
        try:
            for chunk in iterable:
                body.append(chunk)
        except Exception as exc:
            error = _describe(exc)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
    finally:
        release.set()
    if not captured:
        raise AssertionError(f"the app never called start_response (error: {error})")
    status, headers = captured[-1]
    pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return Result(int(status[:3]), pairs, b"".join(body), seen[0] if seen else None, error)


# -- ASGI side -------------------------------------------------------------------


class _Checker:
    """Checks the order and shape of the messages an ASGI app sends."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[Header] = []
        self.body: list[bytes] = []
        self.done = False
        self.finished = anyio.Event()

    async def send(self, message: Any) -> None:
        kind = message.get("type")
        if self.done:
            raise AsgiProtocolError(f"{kind!r} sent after the response was complete")
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            if self.status is None:
                raise AsgiProtocolError("http.response.body before http.response.start")
            body = message.get("body", b"")
            if not isinstance(body, bytes):
                raise AsgiProtocolError(f"body must be bytes, not {type(body).__name__}")
            self.body.append(body)
            self.done = not message.get("more_body", False)
            if self.done:
                self.finished.set()
        else:
            raise AsgiProtocolError(f"unexpected message {kind!r}")

    def _start(self, message: Any) -> None:
        if self.status is not None:
            raise AsgiProtocolError("http.response.start sent twice")
        status = message.get("status")
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise AsgiProtocolError(f"bad status {status!r}")
        for pair in message.get("headers", ()):
            name, value = pair
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise AsgiProtocolError(f"header lines must be byte pairs: {pair!r}")
            self.headers.append((name, value))
        self.status = status


def _receive(request: Request, finished: anyio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
    chunks = request.chunks()
    ends = request.body_ends()  # else the last chunk still says more_body, as under WSGI
    state = {"index": 0}

    async def receive() -> dict[str, Any]:
        index = state["index"]
        state["index"] = index + 1
        if request.disconnect_after is not None and index >= request.disconnect_after:
            return {"type": "http.disconnect"}
        if request.stall_after is not None and index >= request.stall_after:
            await anyio.sleep(request.stall_seconds)
            return {"type": "http.disconnect"}
        if index < len(chunks):
            more = index + 1 < len(chunks) or not ends
            return {"type": "http.request", "body": chunks[index], "more_body": more}
        await finished.wait()  # like a server: disconnect once the response is sent
        return {"type": "http.disconnect"}

    return receive


async def acall_asgi(app: Any, request: Request | None = None) -> Result:
    """Send ``request`` to the ASGI ``app`` in the running event loop."""
    request = request or Request()
    scope = cast("dict[str, Any]", request.scope())
    seen: list[Seen] = []
    scope[SEEN_KEY] = seen
    checker = _Checker()
    error: str | None = None
    try:
        await app(scope, _receive(request, checker.finished), checker.send)
    except AsgiProtocolError:
        raise
    except Exception as exc:
        if checker.status is None:
            raise
        error = _describe(exc)
    if checker.status is None:
        raise AsgiProtocolError("the app returned without starting a response")
    if not checker.done and error is None:
        raise AsgiProtocolError("the app returned before the body was complete")
    return Result(
        checker.status, checker.headers, b"".join(checker.body), seen[0] if seen else None, error
    )


def call_asgi(app: Any, request: Request | None = None, *, backend: str = "asyncio") -> Result:
    """Send ``request`` to the ASGI ``app`` on a new event loop (``"asyncio"`` or ``"trio"``)."""

    async def main() -> Result:
        return await acall_asgi(app, request)

    return anyio.run(main, backend=backend)


# -- a portable inner app ------------------------------------------------------


@dataclass(frozen=True)
class InnerApp:
    """An app described once, available as WSGI (:meth:`wsgi`) and ASGI (:meth:`asgi`).

    It reads the whole request body (unless ``read_body`` is false), records
    what it saw (the ``seen`` field of the :class:`Result`), then answers
    ``status`` / ``headers`` / ``body`` chunks. ``fail`` makes it raise:
    ``"before_start"``, ``"after_start"`` (head given, no body yet) or
    ``"after_body"`` (after the first chunk). ``echo`` answers with the
    request body instead of ``body``.
    """

    status: int = 200
    headers: Sequence[Header] = ((b"content-type", b"text/plain; charset=utf-8"),)
    body: Sequence[bytes] = (b"hello",)
    read_body: bool = True
    fail: str | None = None
    echo: bool = False

    def _chunks(self, seen: Seen) -> list[bytes]:
        return [seen.body] if self.echo else list(self.body)

    def _status_line(self) -> str:
        from bridge._http.status import status_line

        return status_line(self.status)

    def wsgi(self) -> WsgiApp:
        """This app as a WSGI app, wrapped in ``wsgiref.validate.validator``."""

        def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            seen = _record(environ, head_from_environ(environ), *self._read_wsgi(environ))
            if self.fail == "before_start":
                raise RuntimeError("inner app failed before start_response")
            start_response(
                self._status_line(),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers],
            )
            if self.fail == "after_start":
                raise RuntimeError("inner app failed after start_response")
            return self._wsgi_body(self._chunks(seen))

        return validator(app)

    def _wsgi_body(self, chunks: list[bytes]) -> Iterator[bytes]:
        for index, chunk in enumerate(chunks):
            yield chunk
            if self.fail == "after_body" and index == 0:
                raise RuntimeError("inner app failed after its first chunk")

    def _read_wsgi(self, environ: Environ) -> tuple[bytes, str | None]:
        if not self.read_body:
            return b"", None
        stream = environ["wsgi.input"]
        length_text = environ.get("CONTENT_LENGTH") or ""
        remaining = int(length_text) if length_text.isdigit() else None
        if remaining is None and not environ.get("wsgi.input_terminated"):
            return b"", None
        parts: list[bytes] = []
        try:
            while remaining is None or remaining > 0:
                chunk = stream.read(65536 if remaining is None else min(65536, remaining))
                if not chunk:
                    if remaining is not None:
                        return b"".join(parts), "disconnected"
                    break
                parts.append(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
        except OSError:
            return b"".join(parts), "disconnected"
        return b"".join(parts), None

    def asgi(self) -> Callable[[Any, Any, Any], Awaitable[None]]:
        """This app as an ASGI 3 app."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await _echo_other(scope, receive, send)
                return
            body, body_error = await self._read_asgi(receive)
            seen = _record(scope, head_from_scope(scope), body, body_error)
            if self.fail == "before_start":
                raise RuntimeError("inner app failed before start_response")
            headers = [(bytes(k), bytes(v)) for k, v in self.headers]
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            if self.fail == "after_start":
                raise RuntimeError("inner app failed after start_response")
            chunks = self._chunks(seen)
            for index, chunk in enumerate(chunks):
                more = index + 1 < len(chunks)
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if self.fail == "after_body" and index == 0:
                    raise RuntimeError("inner app failed after its first chunk")
            if not chunks:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        return app

    async def _read_asgi(self, receive: Any) -> tuple[bytes, str | None]:
        if not self.read_body:
            return b"", None
        parts: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(parts), "disconnected"
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(parts), None


def _record(mapping: Any, head: RequestHead, body: bytes, body_error: str | None) -> Seen:
    with contextlib.suppress(BadRequest):  # read now: what the app saw, whatever happens later
        head.headers  # noqa: B018
    seen = Seen(head, body, body_error)
    box = mapping.get(SEEN_KEY)
    if isinstance(box, list):
        box.append(seen)
    return seen


async def _echo_other(scope: Any, receive: Any, send: Any) -> None:
    """Non-HTTP scopes: lifespan completes; websocket accepts, echoes once, closes."""
    if scope["type"] == "lifespan":
        await complete_lifespan(receive, send)
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text", "")})
        await send({"type": "websocket.close", "code": 1000})
