"""Helpers shared by the AsgiToWsgi tests: call an adapter through wsgiref's validator."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast
from wsgiref.validate import validator

import pytest
from werkzeug.test import EnvironBuilder

from bridge import AsgiToWsgi
from bridge._http.types import ExcInfo, WsgiHeaders

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

LOGGER = "bridge.asgi_to_wsgi"


class Recorder:
    """A ``start_response`` that records what it was given."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: WsgiHeaders = []
        self.exc_info: ExcInfo | None = None

    def __call__(self, status: str, headers: WsgiHeaders, exc_info: ExcInfo | None = None) -> Any:
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return lambda data: None

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def environ_for(path: str = "/", method: str = "GET", **kwargs: Any) -> dict[str, Any]:
    environ: dict[str, Any] = EnvironBuilder(path=path, method=method, **kwargs).get_environ()
    return environ


def start(app: AsgiToWsgi, environ: dict[str, Any]) -> tuple[Recorder, Iterable[bytes]]:
    """Call the adapter through ``validator``; the caller iterates and closes the result."""
    recorder = Recorder()
    result = validator(cast("WSGIApplication", app))(environ, recorder)
    return recorder, result


def call(app: AsgiToWsgi, environ: dict[str, Any]) -> tuple[Recorder, bytes]:
    recorder, result = start(app, environ)
    try:
        body = b"".join(result)
    finally:
        close(result)
    return recorder, body


def call_unvalidated(app: AsgiToWsgi, environ: dict[str, Any]) -> tuple[Recorder, bytes]:
    """For environs that ``validator`` itself rejects (it asserts on a bad CONTENT_LENGTH)."""
    recorder = Recorder()
    result = app(environ, recorder)
    try:
        body = b"".join(result)
    finally:
        close(result)
    return recorder, body


def get(app: AsgiToWsgi, path: str = "/", **kwargs: Any) -> tuple[Recorder, bytes]:
    return call(app, environ_for(path, **kwargs))


def close(result: Iterable[bytes]) -> None:
    closer = getattr(result, "close", None)
    if closer is not None:
        closer()


def chunks(result: Iterable[bytes]) -> Iterator[bytes]:
    return iter(result)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR
    ]


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The adapter's WARNING lines: bad input it refused (faults are ERROR: :func:`errors`)."""
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


class ShortInput(io.BytesIO):
    """A ``wsgi.input`` that ends early (the client went away mid-upload)."""


class BrokenInput(io.RawIOBase):
    """A ``wsgi.input`` whose read fails, as when the connection is reset."""

    def read(self, size: int = -1) -> bytes:
        raise ConnectionResetError("connection reset by peer")
