"""A real Flask app for the WsgiToAsgi tests: ``uvicorn tests.apps.flask_app:asgi``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse
from wsgiref.validate import validator

from flask import Flask, Response, request, send_file, stream_with_context

from bridge import WsgiToAsgi
from bridge._http.types import Environ

flask = Flask(__name__)
#: Served by /file; the test compares the bytes with this source file.
STATIC = Path(__file__).resolve()


@flask.get("/")
def index() -> str:
    return "Hello from Flask"


@flask.post("/echo")
def echo() -> bytes:
    return request.get_data()


@flask.post("/form")
def form() -> dict[str, Any]:
    upload = request.files["file"]
    return {"name": request.form["name"], "size": len(upload.read())}


@flask.get("/stream")
def stream() -> Response:
    def generate() -> Iterator[str]:
        for i in range(10):
            yield f"line {i}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@flask.get("/cookies")
def cookies() -> Response:
    response = Response("cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@flask.get("/file")
def file() -> Response:
    return send_file(STATIC, mimetype="text/plain")


@flask.get("/thread")
def thread() -> dict[str, Any]:
    return {"thread": threading.get_ident(), "path": request.path, "root": request.root_path}


@flask.get("/boom")
def boom() -> str:
    raise RuntimeError("boom")


class SizedReads:
    """Turn werkzeug's ``read()`` (legal with ``wsgi.input_terminated``) into ``read(n)``.

    ``wsgiref.validate`` insists on one argument; this keeps the validator at the
    server edge while letting Flask read a terminated input its own way.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size is not None and size >= 0:
            return bytes(self._stream.read(size))
        parts = []
        while chunk := self._stream.read(65536):
            parts.append(chunk)
        return b"".join(parts)

    def readline(self, size: int = -1) -> bytes:
        return bytes(self._stream.readline() if size < 0 else self._stream.readline(size))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)


def sized_reads(app: Any) -> Any:
    def wrapped(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"] = SizedReads(environ["wsgi.input"])
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return wrapped


validated = validator(sized_reads(flask))
asgi = WsgiToAsgi(validated)
