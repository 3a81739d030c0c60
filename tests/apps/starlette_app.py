"""A Starlette app behind AsgiToWsgi (``tests.apps.starlette_app:application``)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from bridge import AsgiToWsgi


async def homepage(request: Request) -> Response:
    return PlainTextResponse("Hello from Starlette")


async def info(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "query": dict(request.query_params),
        }
    )


async def json_echo(request: Request) -> Response:
    return JSONResponse(await request.json())


async def cookies(request: Request) -> Response:
    response = PlainTextResponse("cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/json", json_echo, methods=["POST"]),
        Route("/cookies", cookies),
        Mount("/sub", routes=[Route("/info", info)]),
    ]
)
application = AsgiToWsgi(app)
