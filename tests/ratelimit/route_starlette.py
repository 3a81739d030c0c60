"""Starlette with route-level limits: ``@limit`` on endpoints, async and sync.

``Middleware(RateLimit, ...)`` outermost; ``AuthenticationMiddleware`` inside it sets
``request.user`` from a header a proxy would have verified. Served by uvicorn and
hypercorn (trio).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge.ratelimit import LimitDecision, RateLimit, limit, user_key

from .route_common import CUSTOM_429, by_api_key, options, plan_limit


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("x-user")
        return None if not name else (AuthCredentials(["user"]), SimpleUser(name))


def left(request: Request) -> PlainTextResponse:
    decision: LimitDecision | None = request.scope.get("bridge.ratelimit")
    return PlainTextResponse("unlimited" if decision is None else f"left {decision.remaining}")


@limit("2/minute")
async def login(request: Request) -> PlainTextResponse:
    return left(request)


@limit("2/minute")
def other(request: Request) -> PlainTextResponse:
    return left(request)


@limit("2/minute")
async def both(request: Request) -> PlainTextResponse:
    return left(request)


@limit(plan_limit, key=by_api_key)
async def plan(request: Request) -> PlainTextResponse:
    return left(request)


@limit("1/minute", key=user_key())
async def user(request: Request) -> PlainTextResponse:
    return left(request)


@limit("1/minute", rejection=CUSTOM_429)
async def custom(request: Request) -> PlainTextResponse:
    return left(request)


async def free(request: Request) -> PlainTextResponse:
    return PlainTextResponse("free")


routes = [
    Route(f"/{view.__name__}", view) for view in (login, other, both, plan, user, custom, free)
]
app = Starlette(
    routes=routes,
    middleware=[
        Middleware(RateLimit, **options()),  # type: ignore[arg-type]
        Middleware(AuthenticationMiddleware, backend=HeaderAuth()),
    ],
)
