"""The WSGI driver of ResponseBuffering.

The app's iterable is exhausted and closed (its ``close()`` releases what it
holds) before the server writes the first byte of the held body.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bridge._types import Environ, ExcInfo, StartResponse, WsgiHeaders
from bridge.middleware import reason_phrase

from ._response_plan import ERROR, ResponseConfig, ResponsePlan, log_app_error

__all__ = ("serve_wsgi",)


def _wsgi_headers(headers: Iterable[tuple[bytes, bytes]]) -> WsgiHeaders:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _WsgiRun:
    __slots__ = ("holding", "outer_start", "outer_write", "plan", "reason", "written")

    def __init__(self, plan: ResponsePlan, start_response: StartResponse) -> None:
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

    def __init__(self, plan: ResponsePlan) -> None:
        self._plan = plan
        self._chunks = plan.held()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._plan.close()


def serve_wsgi(
    app: Any, config: ResponseConfig, environ: Environ, start_response: StartResponse
) -> Iterable[bytes]:
    """One WSGI request through ResponseBuffering."""
    plan = ResponsePlan(config, str(environ.get("REQUEST_METHOD", "GET")).upper())
    run = _WsgiRun(plan, start_response)
    try:
        iterable = app(environ, run.start_response)
    except Exception as exc:
        return _failed(run, exc, None)
    try:
        streaming = _hold_all(run, iterable)
    except Exception as exc:
        return _failed(run, exc, iterable)
    if streaming is not None:
        return streaming
    _close(iterable)  # the app is released before the client reads anything
    if run.outer_write is None and not run.holding:
        plan.close()
        return _failed(run, RuntimeError("the app never called start_response"), None)
    if run.holding:
        run.final_head()
        return _Replay(plan)
    plan.close()
    return []


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


def _failed(run: _WsgiRun, exc: Exception, iterable: Iterable[bytes] | None) -> Iterable[bytes]:
    """The app failed: 500 while its response is held, else the server's business."""
    if iterable is not None:
        _close(iterable)
    run.plan.close()
    if run.outer_write is not None:
        raise exc
    log_app_error(run.plan.method, exc)
    run.outer_start(f"500 {reason_phrase(500)}", _wsgi_headers(ERROR.headers))
    return [ERROR.body]


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
