"""The app that tests/test_sync_gevent.py serves under gevent: greenlets that wait together.

``/nap/NAME/OTHER`` (a Flask view) calls ``async_to_sync`` on a coroutine that records
``start NAME``, waits until ``start OTHER`` and ``hello`` are recorded (at most 10 s),
records ``end NAME`` and answers. ``/asgi/nap/NAME/OTHER`` does the same in a FastAPI
endpoint behind ``AsgiToWsgi``. ``/warm`` makes a first ``async_to_sync`` call,
``/hello`` records ``hello`` and ``/events`` lists the record. Under gevent all of
them run as greenlets of one OS thread: a nap can end with ``hello`` before it only if
its waiting greenlet let the server answer ``/hello``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from wsgiref.validate import validator

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from flask import Flask

from bridge import AsgiToWsgi, async_to_sync

#: The record of one server process (the tests start one worker per test).
EVENTS: list[str] = []


async def rendezvous(name: str, other: str) -> str:
    EVENTS.append(f"start {name}")
    for _ in range(1000):  # at most ~10 s: only if the other requests get served meanwhile
        if f"start {other}" in EVENTS and "hello" in EVENTS:
            break
        await asyncio.sleep(0.01)
    EVENTS.append(f"end {name}")
    return name


flask = Flask(__name__)


@flask.get("/nap/<name>/<other>")
def nap(name: str, other: str) -> str:
    return async_to_sync(rendezvous)(name, other)


@flask.get("/warm")
def warm() -> str:
    async_to_sync(asyncio.sleep)(0)  # the first call in a process always worked
    return "warm"


@flask.get("/hello")
def hello() -> str:
    EVENTS.append("hello")
    return "hello"


@flask.get("/events")
def events() -> str:
    return ",".join(EVENTS)


api = FastAPI()


@api.get("/asgi/nap/{name}/{other}")
async def api_nap(name: str, other: str) -> PlainTextResponse:
    return PlainTextResponse(await rendezvous(name, other))


_asgi = AsgiToWsgi(api, lifespan="off")


def _dispatch(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO", "").startswith("/asgi/"):
        return _asgi(environ, start_response)
    return flask.wsgi_app(environ, start_response)


app = validator(_dispatch)
