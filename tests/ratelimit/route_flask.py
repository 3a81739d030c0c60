"""Flask with route-level limits: ``@limit`` under ``@app.get``, sync and async views.

``app.wsgi_app = RateLimit(app.wsgi_app, ..., routes=True)``; served by gunicorn. The
identity is ``g.user``, which a ``before_request`` hook (the app's auth) sets from a
header a proxy would have verified.
"""

from __future__ import annotations

import flask

from bridge.ratelimit import LimitDecision, limit, state_key

from .route_common import CUSTOM_429, by_api_key, plan_limit, wrap

app = flask.Flask("route_flask")


def left() -> str:
    decision: LimitDecision | None = flask.request.environ.get("bridge.ratelimit")
    return "unlimited" if decision is None else f"left {decision.remaining}"


@app.before_request
def authenticate() -> None:
    user = flask.request.headers.get("x-user")
    if user:
        flask.g.user = user


@app.get("/login")
@limit("2/minute")
def login() -> str:
    return left()


@app.get("/other")
@limit("2/minute")
async def other() -> str:
    return left()


@app.get("/both")
@limit("2/minute")
def both() -> str:
    return left()


@app.get("/plan")
@limit(plan_limit, key=by_api_key)
def plan() -> str:
    return left()


@app.get("/user")
@limit("1/minute", key=state_key("user"))
def user() -> str:
    return left()


@app.get("/custom")
@limit("1/minute", rejection=CUSTOM_429)
def custom() -> str:
    return left()


@app.get("/free")
def free() -> str:
    return "free"


app.wsgi_app = wrap(app.wsgi_app)  # type: ignore[method-assign]
