"""A Starlette and a Flask hello world wrapped in RequestId, for the access-log tests."""

from __future__ import annotations

from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge import RequestId


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


starlette_app = RequestId(Starlette(routes=[Route("/", _hello)]))

flask_app = Flask(__name__)


@flask_app.get("/")
def _flask_hello() -> str:
    return "hello"


flask_app.wsgi_app = RequestId(flask_app.wsgi_app)  # type: ignore[method-assign]
