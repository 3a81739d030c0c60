"""Route-level limits under ``mypy --strict``: a Flask view, a FastAPI dependency, keys.

Checked by mypy only (tests/typing is part of the mypy run); the lines marked
``type: ignore[...]`` must stay errors (strict mode refuses an unused ignore).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, assert_type

import flask
from fastapi import Depends, FastAPI

from bridge import RateLimit
from bridge.ratelimit import (
    LimitDecision,
    Rate,
    RouteLimit,
    RouteRequest,
    header_key,
    limit,
    parse_rates,
    user_key,
)

app = flask.Flask("typed")


@app.get("/login")
@limit("5/minute", methods="POST")
def login() -> str:
    return "ok"


# The decorator keeps the view's signature: Flask and callers see the same function.
assert_type(login, Callable[[], str])


@limit("5/minute")
async def async_view(user_id: int) -> str:
    return str(user_id)


async def call_async_view() -> None:
    assert_type(await async_view(1), str)  # the same parameters, still a coroutine


def plan_limit(request: RouteRequest) -> str | None:
    """A limit computed per request: the plan of the API key's record."""
    return "100/hour" if request.header(b"x-api-key") else None


TEN_A_MINUTE: Rate = parse_rates("10/minute")[0]


def per_plan() -> list[RouteLimit]:
    return [
        limit(plan_limit, key=header_key("x-api-key")),  # a middleware key function
        limit(TEN_A_MINUTE, key=user_key()),  # a key function of the route's request
        limit(["10/second", "100/minute"], cost=lambda request: len(request.path)),
        limit(lambda request: TEN_A_MINUTE if request.method == "POST" else None),
    ]


def misuse() -> None:
    limit(100)  # type: ignore[arg-type]
    limit("5/minute", key="x-api-key")  # type: ignore[arg-type]
    limit("5/minute", cost="1")  # type: ignore[arg-type]


api = FastAPI()
login_limit = limit("5/minute", name="login")
dependency = login_limit.dependency
assert_type(dependency, Callable[..., Awaitable[LimitDecision | None]])


@api.post("/login")
async def fastapi_login(decision: Annotated[LimitDecision | None, Depends(dependency)]) -> str:
    return "no limit" if decision is None else f"{decision.remaining} left"


api.add_middleware(RateLimit, limit=None, routes=True)
app.wsgi_app = RateLimit(app.wsgi_app, None, routes=True)  # type: ignore[method-assign]
