"""Starlette and FastAPI wrapped their way: ``add_middleware`` / ``middleware=[...]``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge import ProxyHeaders, SecurityHeaders


def _seen(request: Any) -> dict[str, Any]:
    return {
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "host": request.headers.get("host"),
        "root_path": request.scope.get("root_path"),
        "url": str(request.url),
        "nonce": request.scope.get("bridge.csp_nonce"),
    }


async def index(request: Request) -> JSONResponse:
    return JSONResponse(_seen(request))


async def echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    client = websocket.client.host if websocket.client else None
    await websocket.send_json({"client": client, "scheme": websocket.url.scheme})
    await websocket.close()


starlette_app = Starlette(
    routes=[Route("/", index), WebSocketRoute("/ws", echo_ws)],
    middleware=[
        Middleware(ProxyHeaders, use=["for", "proto", "host", "prefix"]),
        Middleware(SecurityHeaders, preset="strict"),
    ],
)

fastapi_app = FastAPI()


@fastapi_app.get("/")
async def fastapi_index(request: FastAPIRequest) -> dict[str, Any]:
    return _seen(request)


# add_middleware: the last one added is the outermost.
fastapi_app.add_middleware(SecurityHeaders, preset="strict")
fastapi_app.add_middleware(ProxyHeaders, use=["for", "proto", "host", "prefix"])
