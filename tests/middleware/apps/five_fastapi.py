"""FastAPI with the five middleware, added the FastAPI way: ``app.add_middleware(X, ...)``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from bridge import CORS, Compression, HTTPSRedirect, RequestId, TrustedHost

from .five_common import (
    ALLOWED_HOSTS,
    BIG,
    CORS_OPTIONS,
    FIRST,
    SECOND,
    TIMED_OUT,
    gate_deadline,
    gate_open,
    redirected,
)

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return "hello"


@app.get("/id", response_class=PlainTextResponse)
async def request_id(request: Request) -> str:
    return f"{request.scope['bridge.request_id']} {request.headers['X-Request-ID']}"


@app.get("/big")
async def big() -> PlainTextResponse:
    return PlainTextResponse(BIG)


@app.get("/secure/{rest:path}", response_class=PlainTextResponse)
async def secure(rest: str) -> str:
    return "served over plain http"


@app.get("/stream")
async def stream(gate: str) -> StreamingResponse:
    async def halves() -> AsyncIterator[bytes]:
        yield FIRST
        deadline = gate_deadline()
        while not gate_open(gate):
            if time.monotonic() > deadline:
                yield TIMED_OUT
                return
            await anyio.sleep(0.01)
        yield SECOND

    return StreamingResponse(halves(), media_type="text/plain")


# The last one added is the outermost, so this is the same order as five_flask.py.
app.add_middleware(Compression)
app.add_middleware(RequestId)
app.add_middleware(CORS, **CORS_OPTIONS)
app.add_middleware(HTTPSRedirect, exempt=redirected)
app.add_middleware(TrustedHost, allowed_hosts=ALLOWED_HOSTS)
