"""Apps behind RequestBuffering for the real-server tests (tests/test_buffering_servers.py).

Configured by environment variables so one module serves every server:
``BUFFERING_MAX`` (max_body_size, default "1m"), ``BUFFERING_TIMEOUT`` (body_timeout
seconds, default "2"), ``BUFFERING_MEMORY`` (memory_size, default "1m") and
``BUFFERING_MARKS`` (a file; each upload view appends one line when it is entered,
so a test can see whether the app ran yet).

* ``flask_asgi``: Flask through ``WsgiToAsgi`` with ONE worker thread, buffered on
  the ASGI side (the slow client never holds that thread).
* ``flask_wsgi``: Flask with ``app.wsgi_app = RequestBuffering(app.wsgi_app)``, for
  gunicorn and waitress.
* ``fastapi_app``: FastAPI with ``app.add_middleware(RequestBuffering, ...)``.
* ``asgi_behind_wsgi``: WSGI-side RequestBuffering in front of ``AsgiToWsgi`` (an
  ASGI app answering the digest of its body), for gunicorn; ``BUFFERING_DEADLINE``
  sets its ``body_deadline``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from flask import Flask
from flask import request as flask_request

from bridge import AsgiToWsgi, RequestBuffering, WsgiToAsgi

OPTIONS: dict[str, Any] = {
    "max_body_size": os.environ.get("BUFFERING_MAX", "1m"),
    "body_timeout": float(os.environ.get("BUFFERING_TIMEOUT", "2")),
    "memory_size": os.environ.get("BUFFERING_MEMORY", "1m"),
}
MARKS = os.environ.get("BUFFERING_MARKS")


def mark(where: str) -> None:
    if MARKS:
        with open(MARKS, "a") as file:
            file.write(f"{where} entered in thread {threading.get_ident()}\n")


def digest(body: bytes) -> dict[str, Any]:
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


flask = Flask(__name__)


@flask.post("/upload")
def flask_upload() -> dict[str, Any]:
    mark("flask")
    return digest(flask_request.get_data())


@flask.get("/ping")
def flask_ping() -> str:
    return "pong"


@flask.get("/pid")
def flask_pid() -> str:
    return str(os.getpid())


flask_asgi = RequestBuffering(
    WsgiToAsgi(flask.wsgi_app, limiter=anyio.CapacityLimiter(1)), **OPTIONS
)

flask_wsgi = Flask(__name__ + ".wsgi")
flask_wsgi.add_url_rule("/upload", view_func=flask_upload, methods=["POST"])
flask_wsgi.add_url_rule("/ping", view_func=flask_ping)
flask_wsgi.add_url_rule("/pid", view_func=flask_pid)
flask_wsgi.wsgi_app = RequestBuffering(flask_wsgi.wsgi_app, **OPTIONS)  # type: ignore[method-assign]

fastapi_app = FastAPI()
fastapi_app.add_middleware(RequestBuffering, **OPTIONS)


@fastapi_app.post("/upload")
async def fastapi_upload(request: Request) -> dict[str, Any]:
    mark("fastapi")
    return digest(await request.body())


@fastapi_app.get("/ping")
async def fastapi_ping() -> PlainTextResponse:
    return PlainTextResponse("pong")


@fastapi_app.get("/pid")
async def fastapi_pid() -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


async def asgi_digest(scope: Any, receive: Any, send: Any) -> None:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = json.dumps(digest(bytes(body))).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


_DEADLINE = os.environ.get("BUFFERING_DEADLINE")
asgi_behind_wsgi = RequestBuffering(
    AsgiToWsgi(asgi_digest),
    **OPTIONS,
    body_deadline=float(_DEADLINE) if _DEADLINE else None,
)
