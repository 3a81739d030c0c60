"""FastAPI with route-level limits: ``Depends(limit(...).dependency)``.

``app.add_middleware(RateLimit, ..., routes=True)``, added last so it runs first;
``AuthenticationMiddleware`` sets ``request.user``. Served by uvicorn and hypercorn (trio).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.middleware.authentication import AuthenticationMiddleware

from bridge.ratelimit import LimitDecision, RateLimit, limit, user_key

from .route_common import CUSTOM_429, by_api_key, options, plan_limit
from .route_starlette import HeaderAuth

app = FastAPI()

plan_limited = limit(plan_limit, key=by_api_key).dependency
Login = Annotated[LimitDecision, Depends(limit("2/minute", name="login").dependency)]


def left(decision: LimitDecision | None) -> str:
    return "unlimited" if decision is None else f"left {decision.remaining}"


@app.get("/login", response_class=PlainTextResponse)
async def login(decision: Login) -> str:
    return left(decision)


@app.get("/other", response_class=PlainTextResponse)
def other(decision: Annotated[LimitDecision, Depends(limit("2/minute").dependency)]) -> str:
    return left(decision)


@app.get(
    "/both",
    response_class=PlainTextResponse,
    dependencies=[Depends(limit("2/minute", name="both-route").dependency)],
)
async def both(request: Request) -> str:
    return left(request.scope["bridge.ratelimit"])  # the route's decision: the nearest


@app.get("/plan", response_class=PlainTextResponse)
async def plan(decision: Annotated[LimitDecision | None, Depends(plan_limited)]) -> str:
    return left(decision)


@app.get("/user", response_class=PlainTextResponse)
async def user(
    decision: Annotated[LimitDecision, Depends(limit("1/minute", key=user_key()).dependency)],
) -> str:
    return left(decision)


@app.get("/custom", response_class=PlainTextResponse)
async def custom(
    decision: Annotated[LimitDecision, Depends(limit("1/minute", rejection=CUSTOM_429).dependency)],
) -> str:
    return left(decision)


@app.get("/free", response_class=PlainTextResponse)
async def free() -> str:
    return "free"


app.add_middleware(AuthenticationMiddleware, backend=HeaderAuth())
app.add_middleware(RateLimit, **options())  # type: ignore[arg-type]
