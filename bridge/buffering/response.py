"""``ResponseBuffering``: hold a response, then send it with a Content-Length.

Theory of operation
-------------------
The decision is sans-IO (:class:`_Plan`, over :func:`may_buffer` and
:class:`ResponseCollector`); the two drivers below only move bytes. For each
response the plan sees the head first and decides whether to buffer (never a
HEAD, 1xx/204/304, ``text/event-stream``, ``X-Accel-Buffering: no``, or what
the ``bypass`` rule refuses). While buffering it holds every chunk; when the
app has finished, the head goes out with the real Content-Length and the held
body follows. If the body crosses ``max_size`` (``overflow="stream"``) or
``max_size + max_file_size`` (``overflow="file"``), or the disk refuses the
file, the plan stops buffering: the head goes out as the app gave it, then the
held chunks, then the rest as it comes ("stream once over").

Releasing the app before a slow client has read everything is the point:

* ASGI: the app's final ``send`` returns as soon as the body is held; the held
  body is sent by a task next to the app, so an app that keeps running after
  its response (Starlette background tasks, a WSGI app's thread under
  WsgiToAsgi) is not held back by the client, nor the client by it.
* WSGI: the app's iterable is exhausted and closed (its ``close()`` releases
  what it holds) before the server starts writing the held body.

An app that fails while its response is held is answered 500 (one log line),
the same under both interfaces. The spool is closed on every path.

This middleware has its own two small drivers instead of the core's response
hooks: the core calls ``Exchange.response_body`` before showing the response
head, and sends the last held chunks from inside the app's final ``send``
(ASGI) or before ``close()`` (WSGI), which would keep the app waiting on the
client.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

import anyio
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from bridge._types import Environ, ExcInfo, StartResponse, WsgiHeaders
from bridge._units import require_size
from bridge.middleware import Interface, Response, detect_interface, reason_phrase, set_header

from ._policy import OVERFLOWS, BypassRule, Overflow, ResponseCollector, may_buffer

__all__ = ("ResponseBuffering",)

logger = logging.getLogger("bridge.buffering")

_ERROR: Final = Response.text(500)


class _Config:
    __slots__ = ("bypass", "capacity", "max_file_size", "max_size", "overflow", "spool_dir")

    def __init__(
        self,
        *,
        max_size: int | str,
        overflow: Overflow,
        max_file_size: int | str,
        spool_dir: str | os.PathLike[str] | None,
        bypass: BypassRule | None,
    ) -> None:
        self.max_size = require_size(max_size, option="max_size")
        self.max_file_size = require_size(max_file_size, option="max_file_size")
        if overflow not in OVERFLOWS:
            raise ValueError(f"overflow must be 'file' or 'stream', got {overflow!r}")
        if bypass is not None and not callable(bypass):
            raise TypeError("bypass must be a function (method, status, headers) -> bool or None")
        self.overflow: Overflow = overflow
        self.spool_dir = spool_dir
        self.bypass = bypass
        self.capacity = self.max_size + (self.max_file_size if overflow == "file" else 0)


class _Plan:
    """One response: whether it is held, what is held, the head to send (sans-IO)."""

    __slots__ = ("collector", "config", "headers", "method", "status")

    def __init__(self, config: _Config, method: str) -> None:
        self.config = config
        self.method = method
        self.collector: ResponseCollector | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
        """See the head; True when the body is to be held."""
        self.status, self.headers = status, headers
        config = self.config
        if may_buffer(self.method, status, headers, capacity=config.capacity, bypass=config.bypass):
            self.collector = ResponseCollector(
                config.max_size,
                config.overflow,
                config.max_file_size,
                None if config.spool_dir is None else os.fspath(config.spool_dir),
            )
            return True
        return False

    def hold(self, chunk: bytes) -> bool:
        """Hold ``chunk``; False when buffering must stop (``chunk`` was not held)."""
        collector = self.collector
        if collector is None:  # pragma: no cover - only called while holding
            return False
        if collector.add(chunk):
            return True
        if collector.refused is not None:
            logger.warning(
                "%s: response streamed, not buffered: %s", self.method, collector.refused
            )
        return False

    def final_headers(self) -> list[tuple[bytes, bytes]]:
        """The app's headers with the held body's Content-Length."""
        size = 0 if self.collector is None else self.collector.size
        headers = [pair for pair in self.headers if pair[0].lower() != b"transfer-encoding"]
        return list(set_header(headers, b"content-length", str(size).encode("ascii")))

    def held(self) -> Iterator[bytes]:
        return iter(()) if self.collector is None else self.collector.held()

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()


def _log_app_error(method: str, exc: BaseException) -> None:
    logger.error(
        "%s: the app raised while its response was buffered; sent 500", method, exc_info=exc
    )


class ResponseBuffering:
    """Hold responses until the app is done, then send them with a Content-Length.

    ``ResponseBuffering(app, **options)`` returns an app of the same interface
    as ``app`` (WSGI or ASGI). Options (keyword-only):

    * ``max_size`` (default ``"1m"``): how much of a response is held in memory.
    * ``overflow`` (default ``"file"``): past ``max_size``, ``"file"`` keeps
      holding in an anonymous temporary file (up to ``max_file_size``);
      ``"stream"`` stops holding and streams the rest.
    * ``max_file_size`` (default ``"1g"``): past ``max_size + max_file_size``
      the rest is streamed. nginx: ``proxy_max_temp_file_size``.
    * ``spool_dir`` (default: the system temporary directory).
    * ``bypass``: a function ``(method, status, headers) -> bool``; True streams
      that response. ``text/event-stream``, ``X-Accel-Buffering: no``, HEAD
      requests and 1xx/204/304 responses are never held.
    * ``interface``: ``"wsgi"`` or ``"asgi"`` to override detection.

    .. versionadded:: 0.1
    """

    app: Any
    config: _Config
    interface: Interface

    def __new__(cls, app: Any = None, **options: Any) -> ResponseBuffering:
        interface = options.get("interface") or detect_interface(app)
        if interface not in ("wsgi", "asgi"):
            raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        variant = _WsgiResponseBuffering if interface == "wsgi" else _AsgiResponseBuffering
        return object.__new__(variant)

    def __init__(
        self,
        app: Any,
        *,
        max_size: int | str = "1m",
        overflow: Overflow = "file",
        max_file_size: int | str = "1g",
        spool_dir: str | os.PathLike[str] | None = None,
        bypass: BypassRule | None = None,
        interface: Interface | None = None,
    ) -> None:
        self.app = app
        self.config = _Config(
            max_size=max_size,
            overflow=overflow,
            max_file_size=max_file_size,
            spool_dir=spool_dir,
            bypass=bypass,
        )

    def __call__(self, *args: Any) -> Any:
        # Replaced by the WSGI or ASGI variant that __new__ picks.
        raise TypeError("ResponseBuffering was not created through its class")

    def __repr__(self) -> str:
        return f"<ResponseBuffering ({self.interface}) around {self.app!r}>"


# -- ASGI ------------------------------------------------------------------------


class _AsgiRun:
    __slots__ = ("flushing", "holding", "outer", "plan", "started", "task_group")

    def __init__(self, plan: _Plan, outer: Callable[[Any], Awaitable[None]]) -> None:
        self.plan = plan
        self.outer = outer
        self.holding = False
        self.started = False  # the head has been sent (or is being sent by the flush task)
        self.flushing = False
        self.task_group: anyio.abc.TaskGroup | None = None

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", ())]
            self.holding = self.plan.start(message["status"], headers)
            if not self.holding:
                self.started = True
                await self.outer(message)
            return
        if not self.holding:
            await self.outer(message)
            return
        if kind != "http.response.body":  # e.g. pathsend: cannot be held
            await self.stream_from_here()
            await self.outer(message)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if body and not self.plan.hold(body):
            await self.stream_from_here()
            await self.outer(message)
            return
        if not more:
            self.holding = False
            self.started = self.flushing = True
            assert_group(self.task_group).start_soon(self.flush)

    async def stream_from_here(self) -> None:
        """Stop holding: the app's own head, then what was held."""
        self.holding = False
        self.started = True
        plan = self.plan
        await self.outer(
            {"type": "http.response.start", "status": plan.status, "headers": plan.headers}
        )
        for chunk in plan.held():
            await self.outer({"type": "http.response.body", "body": chunk, "more_body": True})

    async def flush(self) -> None:
        plan = self.plan
        start = {
            "type": "http.response.start",
            "status": plan.status,
            "headers": plan.final_headers(),
        }
        await self.outer(start)
        for chunk in plan.held():
            await self.outer({"type": "http.response.body", "body": chunk, "more_body": True})
        await self.outer({"type": "http.response.body", "body": b"", "more_body": False})


def assert_group(group: anyio.abc.TaskGroup | None) -> anyio.abc.TaskGroup:
    if group is None:  # pragma: no cover - set before the app runs
        raise RuntimeError("ResponseBuffering: no task group")
    return group


class _AsgiResponseBuffering(ResponseBuffering):
    interface = "asgi"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plan = _Plan(self.config, scope["method"])
        run = _AsgiRun(plan, send)
        error: Exception | None = None
        try:
            try:
                async with anyio.create_task_group() as group:
                    run.task_group = group
                    try:
                        await self.app(scope, receive, run.send)
                    except Exception as exc:
                        error = exc
            except ExceptionGroup as group_error:  # the flush task failed (client gone)
                raise _single(group_error) from None
            if error is None and run.holding:
                error = RuntimeError("the app returned before its response body was complete")
            if error is not None:
                if run.started:
                    raise error
                _log_app_error(plan.method, error)
                await _send_asgi_response(send, _ERROR)
        finally:
            plan.close()


def _single(group: ExceptionGroup[Exception]) -> Exception:
    """The one error of the flush task, as the server would have seen it without us."""
    errors = group.exceptions
    return errors[0] if len(errors) == 1 else group


async def _send_asgi_response(send: ASGISendCallable, response: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": list(response.headers),
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


# -- WSGI ------------------------------------------------------------------------


def _wsgi_headers(headers: Iterable[tuple[bytes, bytes]]) -> WsgiHeaders:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _WsgiRun:
    __slots__ = ("holding", "outer_start", "outer_write", "plan", "reason", "written")

    def __init__(self, plan: _Plan, start_response: StartResponse) -> None:
        self.plan = plan
        self.outer_start = start_response
        self.outer_write: Callable[[bytes], object] | None = None
        self.holding = False
        self.reason = ""
        self.written: list[bytes] = []  # write() calls while holding

    def start_response(
        self, status: str, headers: WsgiHeaders, exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if self.outer_write is not None:  # streaming: the server decides about exc_info
            return self.outer_start(status, headers, exc_info)
        code = int(status[:3])
        self.reason = status[4:]
        pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.holding = self.plan.start(code, pairs)
        if not self.holding:
            self.outer_write = self.outer_start(status, headers, exc_info)
            return self.outer_write
        return self.written.append

    def stream_from_here(self) -> Iterator[bytes]:
        """Stop holding: the app's own head now, then what was held."""
        self.holding = False
        plan = self.plan
        self.outer_write = self.outer_start(
            f"{plan.status} {self.reason}", _wsgi_headers(plan.headers)
        )
        return plan.held()

    def final_head(self) -> None:
        plan = self.plan
        self.outer_start(f"{plan.status} {self.reason}", _wsgi_headers(plan.final_headers()))


class _Replay:
    """The held body handed to the server; closing it releases the spool."""

    __slots__ = ("_chunks", "_plan")

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._chunks = plan.held()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._plan.close()


class _WsgiResponseBuffering(ResponseBuffering):
    interface = "wsgi"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plan = _Plan(self.config, str(environ.get("REQUEST_METHOD", "GET")).upper())
        run = _WsgiRun(plan, start_response)
        try:
            iterable = self.app(environ, run.start_response)
        except Exception as exc:
            return self._failed(run, exc, None)
        try:
            streaming = self._hold_all(run, iterable)
        except Exception as exc:
            return self._failed(run, exc, iterable)
        if streaming is not None:
            return streaming
        _close(iterable)  # the app is released before the client reads anything
        if run.outer_write is None and not run.holding:
            plan.close()
            return self._failed(run, RuntimeError("the app never called start_response"), None)
        if run.holding:
            run.final_head()
            return _Replay(plan)
        plan.close()
        return []

    @staticmethod
    def _hold_all(run: _WsgiRun, iterable: Iterable[bytes]) -> _Streaming | None:
        """Hold the whole body; a :class:`_Streaming` when it is not (or no longer) held."""
        chunks = iter(iterable)
        while True:
            chunk = next(chunks, None)
            pending = run.written + ([chunk] if chunk else [])
            run.written = []
            if not run.holding:
                if run.outer_write is not None:
                    return _Streaming(run, chunks, iterable, iter(pending))
            else:
                for index, piece in enumerate(pending):
                    if not run.plan.hold(piece):
                        first = itertools.chain(run.stream_from_here(), pending[index:])
                        return _Streaming(run, chunks, iterable, first)
            if chunk is None:
                return None

    def _failed(
        self, run: _WsgiRun, exc: Exception, iterable: Iterable[bytes] | None
    ) -> Iterable[bytes]:
        if iterable is not None:
            _close(iterable)
        run.plan.close()
        if run.outer_write is not None:
            raise exc
        _log_app_error(run.plan.method, exc)
        run.outer_start(f"500 {reason_phrase(500)}", _wsgi_headers(_ERROR.headers))
        return [_ERROR.body]


class _Streaming:
    """Pass-through of the rest of the app's body (after ``first`` chunks)."""

    __slots__ = ("_chunks", "_inner", "_run")

    def __init__(
        self,
        run: _WsgiRun,
        chunks: Iterator[bytes],
        inner: Iterable[bytes],
        first: Iterator[bytes],
    ) -> None:
        self._run = run
        self._chunks = itertools.chain(first, chunks)
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            _close(self._inner)
        finally:
            self._run.plan.close()
