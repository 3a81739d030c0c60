"""Flask (for gunicorn) and Starlette (for uvicorn) behind nginx, wrapped as the docs show.

``PROXY_MODE`` in the environment picks ProxyHeaders' mode (the docs give one per
nginx configuration). Both apps answer with what they saw: the client address,
scheme, host, the request as the server saw it (``bridge.proxy.original``) and
which forwarded headers reached them; ``/upload`` answers with the body's size.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge import ProxyHeaders, RequestBuffering

MODE: Any = os.environ.get("PROXY_MODE", "x-forwarded")
MAX_BODY = "64k"
FORWARDED_NAMES = ("forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip")


def _original(mapping: Any) -> Any:
    return None if mapping is None else {key: mapping[key] for key in mapping}


flask_app = Flask(__name__)


@flask_app.get("/")
def flask_index() -> Any:
    return jsonify(
        client=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        original=_original(request.environ.get("bridge.proxy.original")),
        forwarded={name: request.headers.get(name) for name in FORWARDED_NAMES},
    )


@flask_app.post("/upload")
def flask_upload() -> Any:
    return jsonify(size=len(request.get_data()), client=request.remote_addr)


# Flask declares wsgi_app as a method, so mypy needs to be told (as for werkzeug's ProxyFix).
flask_app.wsgi_app = ProxyHeaders(  # type: ignore[method-assign]
    RequestBuffering(flask_app.wsgi_app, max_body_size=MAX_BODY), mode=MODE
)


async def starlette_index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "host": request.headers.get("host"),
            "original": _original(request.scope.get("bridge.proxy.original")),
            "forwarded": {name: request.headers.get(name) for name in FORWARDED_NAMES},
        }
    )


async def starlette_upload(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"size": len(body), "client": request.client and request.client.host})


async def starlette_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    client = websocket.client.host if websocket.client else None
    original = _original(websocket.scope.get("bridge.proxy.original"))
    scheme = websocket.url.scheme
    await websocket.send_json({"client": client, "scheme": scheme, "original": original})
    await websocket.close()


starlette_app = ProxyHeaders(
    RequestBuffering(
        Starlette(
            routes=[
                Route("/", starlette_index),
                Route("/upload", starlette_upload, methods=["POST"]),
                WebSocketRoute("/ws", starlette_ws),
            ]
        ),
        max_body_size=MAX_BODY,
        close_connection=False,  # behind nginx with proxy_request_buffering off (docs)
    ),
    mode=MODE,
)
