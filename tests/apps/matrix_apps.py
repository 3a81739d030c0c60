"""The two apps of the server matrix (tests/test_server_matrix.py), each behind the full stack.

* ``flask_asgi``: a Flask app wrapped in the WSGI-side middleware stack, then in
  ``WsgiToAsgi``, served by ASGI servers (uvicorn, hypercorn, daphne, granian).
* ``fastapi_wsgi``: a FastAPI app wrapped in the ASGI-side middleware stack, then in
  ``AsgiToWsgi``, served by WSGI servers (gunicorn, gevent.pywsgi, waitress, uWSGI,
  granian's WSGI interface).

Both answer the same routes with the same bytes. ``/stream?gate=PATH`` sends its
first chunk, then waits for the test to create PATH before the last one, so a test
can see whether the first chunk reached the client before the app finished.
``MATRIX_LOG`` names a file that lifespan events are appended to.
"""

from __future__ import annotations

import logging
import os
import time
import wsgiref.util
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from flask import Flask
from flask import Response as FlaskResponse
from flask import request as flask_request

from bridge import (
    AsgiToWsgi,
    ProxyHeaders,
    RateLimit,
    RequestBuffering,
    SecurityHeaders,
    WsgiToAsgi,
    async_to_sync,
)
from bridge.ratelimit import Rule

#: The last chunk of /stream waits at most this long for its gate file.
GATE_WAIT = 10.0
LIMITED_PER_MINUTE = 3
MAX_BODY = "24m"


def _log(event: str) -> None:
    path = os.environ.get("MATRIX_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {event}\n")


def _wait_for_gate(gate: str) -> None:
    deadline = time.monotonic() + GATE_WAIT
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


async def _doubled(value: int) -> int:
    await anyio.lowlevel.checkpoint()  # on whichever loop async_to_sync chose: asyncio or trio
    return value * 2


def _stack(app: Any) -> Any:
    """The middleware stack, outermost first in request order, around either interface."""
    # The soak test sends thousands of 429s into a pipe it reads only at the end: their
    # WARNING lines (one per rejection) would fill it and block the server. INFO is hidden.
    app = RateLimit(
        app,
        None,
        rules=[Rule(f"{LIMITED_PER_MINUTE}/minute", path="/limited")],
        log_level=logging.INFO,
    )
    app = SecurityHeaders(app)
    app = RequestBuffering(app, max_body_size=MAX_BODY)
    return ProxyHeaders(app, trusted=["127.0.0.1"])


# -- Flask, for ASGI servers -----------------------------------------------------------

flask = Flask(__name__)


@flask.get("/hello")
def flask_hello() -> str:
    return "hello"


@flask.post("/echo")
def flask_echo() -> bytes:
    return flask_request.get_data()


@flask.get("/stream")
def flask_stream() -> FlaskResponse:
    gate = flask_request.args.get("gate", "")

    def chunks() -> Iterator[bytes]:
        yield b"first;"
        _wait_for_gate(gate)
        yield b"last"

    return FlaskResponse(chunks(), mimetype="text/plain")


@flask.get("/client")
def flask_client() -> str:
    return f"{flask_request.remote_addr} {flask_request.scheme} {flask_request.host}"


@flask.get("/limited")
def flask_limited() -> str:
    return "ok"


@flask.get("/sync")
def flask_sync() -> str:
    return str(async_to_sync(_doubled)(21))


@flask.get("/lifespan")
def flask_lifespan() -> str:
    return "none"  # a WSGI app has no lifespan: WsgiToAsgi completes it for the server


flask_asgi = WsgiToAsgi(_stack(flask.wsgi_app))


# -- FastAPI, for WSGI servers ---------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
    _log("startup")
    yield {"started": "yes"}
    _log("shutdown")


api = FastAPI(lifespan=_lifespan)


@api.get("/hello")
async def api_hello() -> PlainTextResponse:
    return PlainTextResponse("hello")


@api.post("/echo")
async def api_echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@api.get("/stream")
async def api_stream(gate: str = "") -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        await anyio.to_thread.run_sync(_wait_for_gate, gate)
        yield b"last"

    return StreamingResponse(chunks(), media_type="text/plain")


@api.get("/client")
async def api_client(request: Request) -> PlainTextResponse:
    client = request.client.host if request.client else "-"
    return PlainTextResponse(f"{client} {request.url.scheme} {request.url.netloc}")


@api.get("/limited")
async def api_limited() -> PlainTextResponse:
    return PlainTextResponse("ok")


@api.get("/sync")
def api_sync() -> PlainTextResponse:
    # a sync endpoint runs in a worker thread, where async_to_sync reaches the app's loop
    return PlainTextResponse(str(async_to_sync(_doubled)(21)))


@api.get("/lifespan")
async def api_lifespan(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.started)


fastapi_wsgi = AsgiToWsgi(_stack(api))


def _serve_once(app: Any, path: str) -> None:
    """One GET through ``app`` in this process, as a WSGI server would make it."""
    environ: dict[str, Any] = {"PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1"}
    wsgiref.util.setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


if os.environ.get("MATRIX_SERVE_AT_IMPORT"):
    # A preloading master that serves (or warms up) through bridge before forking workers:
    # its background loop is running when the workers are forked (issue 13 item 1c).
    _serve_once(fastapi_wsgi, "/hello")
