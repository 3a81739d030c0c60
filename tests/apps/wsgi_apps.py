"""Plain WSGI apps for the WsgiToAsgi tests, each served through ``wsgiref.validate.validator``.

``asgi`` is the router below, validated and wrapped in WsgiToAsgi, for real servers:
``uvicorn tests.apps.wsgi_apps:asgi``. ``EVENTS`` records what happened inside the
server process (iterable closed, upload interrupted, ...) and ``/events`` returns it.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse
from wsgiref.validate import validator

from bridge import WsgiToAsgi
from bridge._http.types import Environ

CHUNK = 64 * 1024
EVENTS: list[str] = []
_events_lock = threading.Lock()
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


def record(event: str) -> None:
    with _events_lock:
        EVENTS.append(event)


def _query(environ: Environ) -> dict[str, str]:
    pairs = (p.partition("=") for p in environ.get("QUERY_STRING", "").split("&") if p)
    return {k: v for k, _, v in pairs}


class Closing:
    """An iterable that records when the server closes it."""

    def __init__(self, chunks: Iterable[bytes], name: str) -> None:
        self._chunks = iter(chunks)
        self.name = name

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        record(f"closed:{self.name}")


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def read_all(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = b"".join(read_all(environ["wsgi.input"]))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Hash the body as it streams in; report size and digest."""
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in read_all(environ["wsgi.input"]):
            digest.update(chunk)
            size += len(chunk)
    except OSError as exc:
        record(f"upload-error:{type(exc).__name__}:{exc}")
        raise
    body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def download(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``?mib=N``: N MiB of a repeating pattern, streamed in 64 KiB chunks; endless with N=0."""
    mib = int(_query(environ).get("mib", "1"))
    block = bytes(range(256)) * (CHUNK // 256)
    headers = [("Content-Type", "application/octet-stream")]
    if mib:
        headers.append(("Content-Length", str(mib * 1024 * 1024)))
    start_response("200 OK", headers)

    def blocks() -> Iterator[bytes]:
        count = 0
        while not mib or count < mib * 16:
            count += 1
            yield block

    return Closing(blocks(), "download")


def context(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Sets a context variable: a later request on the same connection must not see it."""
    seen = request_var.get()
    request_var.set(environ["PATH_INFO"])
    body = json.dumps({"seen": seen, "thread": threading.get_ident()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def environ_dump(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    keep = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keep).encode()]


def events(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    with _events_lock:
        body = json.dumps(EVENTS).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def pid(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


def short(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Declares 10 bytes, sends 5: the server must end the connection as an error."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return Closing(iter([b"12345"]), "short")


def long(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Declares 3 bytes, sends 10: the response is cut at 3."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return Closing(iter([b"12345", b"67890"]), "long")


def fail_midway(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Raises after the first chunk went out: the response must be aborted."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("the app failed mid-stream")

    return Closing(chunks(), "fail-midway")


BARRIER = threading.Barrier(8, timeout=30)


def barrier(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Returns only once 8 requests are inside the app at the same time."""
    BARRIER.wait()
    return hello(environ, start_response)


ROUTES = {
    "/": hello,
    "/echo": echo,
    "/upload": upload,
    "/download": download,
    "/context": context,
    "/context2": context,
    "/environ": environ_dump,
    "/events": events,
    "/pid": pid,
    "/short": short,
    "/long": long,
    "/fail-midway": fail_midway,
    "/barrier": barrier,
}


def router(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    app = ROUTES.get(path) or (environ_dump if path.startswith("/environ/") else None)
    if app is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    return app(environ, start_response)


asgi = WsgiToAsgi(validator(router))
