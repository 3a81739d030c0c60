"""Apps for bench_wsgi_to_asgi.py: plain WSGI apps and Flask, under each adapter.

``uvicorn benchmarks.wsgi_to_asgi_apps:flask_<adapter>`` serves Flask through an adapter;
``gunicorn benchmarks.wsgi_to_asgi_apps:flask_app`` serves it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from a2wsgi import WSGIMiddleware as A2wsgi
from asgiref.wsgi import WsgiToAsgi as AsgirefWsgiToAsgi
from flask import Flask
from uvicorn.middleware.wsgi import _WSGIMiddleware as UvicornWsgi

from bridge import WsgiToAsgi

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

HELLO = b"Hello, world!"
CHUNK = b"c" * 4096
BLOCK = b"b" * 65536


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def chunks_64k(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(16):
        yield CHUNK


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    parts = []
    while part := stream.read(65536):
        parts.append(part)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"".join(parts)]


def download_200m(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    for _ in range(200 * 16):
        yield BLOCK


def upload_200m(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    size = 0
    while part := stream.read(65536):
        size += len(part)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(size).encode()]


ADAPTERS: dict[str, Callable[[Any], Any]] = {
    "bridge": WsgiToAsgi,
    "uvicorn": UvicornWsgi,
    "a2wsgi": A2wsgi,
    "asgiref": AsgirefWsgiToAsgi,
}

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "Hello, world!"


flask_bridge = WsgiToAsgi(flask_app)
flask_uvicorn = UvicornWsgi(flask_app)
flask_a2wsgi = A2wsgi(flask_app)
flask_asgiref = AsgirefWsgiToAsgi(flask_app)
