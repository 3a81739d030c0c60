"""Route-level limits in process: the WSGI edge through ``wsgiref.validate`` (Flask), the
ASGI edge on asyncio and trio (Starlette), configuration errors, and the store calls
a request makes (counted, and on a real redis-server by its own command statistics)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import MutableMapping, Sequence
from typing import Any

import flask
import pytest
from fastapi import Request as FastAPIRequest  # module level: FastAPI resolves it here
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge import MemoryStore, RateLimit
from bridge.ratelimit import (
    LimitDecision,
    Rate,
    RouteRequest,
    Rule,
    Store,
    Verdict,
    environ_key,
    header_key,
    limit,
    response_cost,
    state_key,
)
from bridge.testing import Request, acall_asgi, call_wsgi


class CountingStore:
    """A MemoryStore that counts its checks (each would be one Redis round trip)."""

    local = True

    def __init__(self, answer: Verdict | None = None) -> None:
        self.inner = MemoryStore()
        self.checks = 0
        self.answer = answer

    def check(
        self, key: str, rates: Sequence[Rate], algorithm: str, cost: int, now: float
    ) -> Verdict:
        self.checks += 1
        if self.answer is not None:
            return self.answer
        return self.inner.check(key, rates, algorithm, cost, now)

    async def check_async(self, *args: Any) -> Verdict:  # pragma: no cover - local store
        raise AssertionError("a local store is checked inline")

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        return self.inner.acquire(key, limit, token, now)

    async def acquire_async(self, key: str, limit: int, token: str, now: float) -> bool:
        return self.inner.acquire(key, limit, token, now)

    def release(self, key: str, token: str) -> None:
        self.inner.release(key, token)

    async def release_async(self, key: str, token: str) -> None:
        self.inner.release(key, token)


def flask_app(**options: Any) -> flask.Flask:
    app = flask.Flask("route_limits")

    def left() -> str:
        decision: LimitDecision | None = flask.request.environ.get("bridge.ratelimit")
        return "unlimited" if decision is None else f"{decision.result} {decision.remaining}"

    @app.route("/login", methods=["GET", "POST"])
    @limit("2/minute", methods="POST")
    def login() -> str:
        return left()

    @app.get("/heavy")
    @limit("10/minute", cost=lambda request: int(request.header(b"x-cost") or b"1"))
    def heavy() -> str:
        return left()

    @app.get("/free")
    def free() -> str:
        return left()

    @app.get("/remote-user")
    @limit("1/minute", key=environ_key("REMOTE_USER"))
    def remote_user() -> str:
        return left()

    app.wsgi_app = RateLimit(app.wsgi_app, **{"limit": None, "routes": True, **options})  # type: ignore[method-assign]
    return app


def get(
    app: flask.Flask, path: str, method: str = "GET", headers: Sequence[tuple[bytes, bytes]] = ()
) -> Any:
    return call_wsgi(
        app.wsgi_app, Request(method=method, path=path, headers=((b"host", b"t"), *headers))
    )


# -- WSGI, through wsgiref.validate ---------------------------------------------------


def test_methods_limit_only_the_methods_named() -> None:
    app = flask_app()
    assert [get(app, "/login").body for _ in range(3)] == [b"unlimited"] * 3
    posts = [get(app, "/login", "POST") for _ in range(3)]
    assert [r.status for r in posts] == [200, 200, 429]
    assert posts[1].body == b"allowed 0"
    assert posts[2].header(b"retry-after") is not None


def test_cost_is_a_function_of_the_route_request() -> None:
    app = flask_app()
    first = get(app, "/heavy", headers=[(b"x-cost", b"7")])
    assert (first.status, first.body) == (200, b"allowed 3")
    assert get(app, "/heavy", headers=[(b"x-cost", b"4")]).status == 429
    assert get(app, "/heavy", headers=[(b"x-cost", b"3")]).body == b"allowed 0"


def test_environ_key_keys_on_what_the_server_verified() -> None:
    app = flask_app()
    # wsgiref's validator passes REMOTE_USER through; our call sets it via a wrapper.
    inner = app.wsgi_app

    def with_user(user: str) -> Any:
        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            environ["REMOTE_USER"] = user
            return inner(environ, start_response)

        return call_wsgi(wsgi, Request(path="/remote-user"))

    assert [with_user("alice").status, with_user("alice").status] == [200, 429]
    assert with_user("bob").status == 200
    assert with_user("alice").header(b"ratelimit-policy") == b'"1/minute";q=1;w=60'


def test_store_unavailable_fail_closed_answers_503_from_the_route() -> None:
    app = flask_app(store=CountingStore(Verdict(False, (), unavailable=True)))
    refused = get(app, "/login", "POST")
    assert refused.status == 503
    assert refused.header(b"retry-after") == b"5"
    assert refused.header(b"ratelimit") is None
    assert get(app, "/free").status == 200


def test_dry_run_admits_and_reports_the_route_decision() -> None:
    seen: list[LimitDecision] = []
    app = flask_app(dry_run=True, on_decision=seen.append)
    results = [get(app, "/login", "POST") for _ in range(3)]
    assert [r.status for r in results] == [200, 200, 200]
    assert results[2].body == b"dry_run 0"
    assert [d.result for d in seen] == ["allowed", "allowed", "dry_run"]
    assert {d.rule for d in seen} == {
        "route:tests.ratelimit.test_route_limits.flask_app._locals_.login"
    }


def test_headers_off_and_legacy_headers() -> None:
    quiet = flask_app(headers=False)
    assert get(quiet, "/login", "POST").header(b"ratelimit") is None
    legacy = flask_app(legacy_headers=True)
    response = get(legacy, "/login", "POST")
    assert response.header(b"x-ratelimit-limit") == b"2"
    assert response.header(b"x-ratelimit-remaining") == b"1"
    assert response.header(b"ratelimit-policy") == b'"2/minute";q=2;w=60'


def test_problem_json_rejection_from_a_route() -> None:
    app = flask_app(error_format="problem+json")
    for _ in range(2):
        get(app, "/login", "POST")
    refused = get(app, "/login", "POST")
    assert refused.status == 429
    assert refused.header(b"content-type") == b"application/problem+json"
    assert json.loads(refused.body)["violated-policies"] == ["2/minute"]
    assert refused.header(b"content-length") == str(len(refused.body)).encode()


def test_rejections_are_logged_like_a_rule(caplog: pytest.LogCaptureFixture) -> None:
    app = flask_app()
    with caplog.at_level(logging.WARNING, logger="bridge.ratelimit"):
        for _ in range(3):
            get(app, "/login", "POST")
    [record] = caplog.records
    assert record.ratelimit_policy == '"2/minute";q=2;w=60'  # type: ignore[attr-defined]
    assert "rejected POST /login" in record.getMessage()


def test_one_store_check_per_limit_covering_the_request() -> None:
    """A route limit on a request no middleware rule covers is its only check; no
    limit, no check; under a middleware default too, two limits, two checks."""
    store = CountingStore()
    app = flask_app(store=store)
    get(app, "/login", "POST")
    assert store.checks == 1
    get(app, "/free")
    get(app, "/login")  # GET: the route limits POST only
    assert store.checks == 1
    both = CountingStore()
    stacked = flask_app(store=both, limit="100/minute")
    response = get(stacked, "/login", "POST")
    assert both.checks == 2
    assert response.header(b"ratelimit-policy") == b'"2/minute";q=2;w=60, "100/minute";q=100;w=60'


# -- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: limit(100), TypeError, "bare number"),  # type: ignore[arg-type]
        (lambda: limit("5/fortnight"), ValueError, "fortnight"),
        (lambda: limit("5/minute", cost=-1), ValueError, "cost"),
        (lambda: limit("5/minute", name="no spaces"), ValueError, "rule name"),
        (lambda: limit("5/minute", key="user"), TypeError, "key must be"),  # type: ignore[arg-type]
        (lambda: limit("5/minute", methods="FETCH ME"), ValueError, "methods"),
        (lambda: limit("5/minute", rejection=b"no"), TypeError, "rejection"),  # type: ignore[arg-type]
        (lambda: limit("5/minute")("login"), TypeError, "decorates"),  # type: ignore[arg-type]
    ],
)
def test_misconfiguration_raises_when_declared(
    call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


def test_middleware_without_limit_needs_routes() -> None:
    with pytest.raises(ValueError, match=r"routes=True"):
        RateLimit(flask.Flask("x").wsgi_app, None)


@pytest.mark.parametrize(
    "charged",
    [
        {"limit": "5/minute", "count_when": (401,)},
        {"limit": "5/minute", "cost": response_cost("X-Tokens-Used")},
        {"limit": None, "rules": [Rule("5/minute", count_when=(401,))]},
        {"limit": None, "rules": [Rule("5/minute", cost=response_cost("X-Tokens-Used"))]},
    ],
    ids=["count_when", "response_cost", "rule-count_when", "rule-response_cost"],
)
def test_routes_with_charged_rules_says_to_split_them(charged: dict[str, Any]) -> None:
    """A charged-after-the-response rule and route limits in one RateLimit: not yet."""
    with pytest.raises(ValueError, match=r"routes=True cannot be combined with count_when=") as e:
        RateLimit(flask.Flask("x").wsgi_app, routes=True, **charged)
    assert "give the charged rules to a second RateLimit" in str(e.value)


def test_charged_rules_in_a_second_ratelimit_stack_with_route_limits() -> None:
    """The documented way round: the charged rule's RateLimit wraps the routes=True one."""
    app = flask.Flask("stacked")

    @app.post("/login")
    @limit("3/minute")
    def login() -> tuple[str, int]:
        return "wrong password", 401

    routed = RateLimit(app.wsgi_app, None, routes=True, clock=lambda: 0.0)
    stacked = RateLimit(routed, "2/minute", count_when=(401,), clock=lambda: 0.0)
    results = [call_wsgi(stacked, Request("POST", "/login")) for _ in range(3)]
    assert [result.status for result in results] == [401, 401, 429]
    both = b'"3/minute";q=3;w=60, "2/minute";q=2;w=60'
    assert results[0].header(b"ratelimit-policy") == both


def test_view_without_the_middleware_says_what_to_add() -> None:
    app = flask.Flask("bare")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "hi"

    with pytest.raises(RuntimeError, match=r"RateLimit\(app, \.\.\., routes=True\)"):
        app.test_client().get("/")


def test_a_computed_limit_returning_junk_is_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = flask.Flask("junk")

    @app.get("/")
    @limit(lambda request: 100)  # type: ignore[arg-type]
    def index() -> str:
        return "hi"

    app.wsgi_app = RateLimit(app.wsgi_app, None, routes=True)  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        assert get(app, "/").status == 500
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any("the limit function returned 100" in str(e) for e in errors)


def test_long_view_names_make_valid_rule_names() -> None:
    seen: list[LimitDecision] = []

    def a_view_with_a_rather_long_name_that_goes_on_and_on_and_on_and_on() -> str:
        return "ok"

    app = flask.Flask("names")
    app.get("/")(
        limit("5/minute")(a_view_with_a_rather_long_name_that_goes_on_and_on_and_on_and_on)
    )
    app.wsgi_app = RateLimit(app.wsgi_app, None, routes=True, on_decision=seen.append)  # type: ignore[method-assign]
    assert get(app, "/").status == 200
    [decision] = seen
    assert len(decision.rule) == 64
    assert decision.rule.startswith("route:tests.ratelimit.test_route_limits.")


# -- ASGI, on asyncio and trio ------------------------------------------------------------


def starlette_app(store: Store | None = None, **options: Any) -> Any:
    @limit("1/minute", key=state_key("account"))
    async def account(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("ok")

    @limit(lambda request: "1/minute" if request.header(b"x-plan") == b"free" else "3/minute")
    def plan(request: StarletteRequest) -> PlainTextResponse:
        decision: LimitDecision = request.scope["bridge.ratelimit"]
        return PlainTextResponse(f"{decision.limit} {decision.remaining}")

    inner = Starlette(routes=[Route("/account", account), Route("/plan", plan)])

    async def authenticate(scope: Any, receive: Any, send: Any) -> None:
        # An earlier middleware's verified identity, in request.state.
        headers = dict(scope.get("headers", ()))
        scope.setdefault("state", {})["account"] = headers.get(b"x-account", b"").decode() or None

        async def add_header(message: MutableMapping[str, Any]) -> None:
            # Like CORS inside the limiter: its fields belong on any response, a 429 too.
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-app", b"kept")]}
            await send(message)

        await inner(scope, receive, add_header)

    return RateLimit(authenticate, None, routes=True, store=store, **options)


def asgi_get(path: str, *headers: tuple[bytes, bytes]) -> Request:
    return Request(path=path, headers=((b"host", b"t"), *headers))


@pytest.mark.anyio
async def test_asgi_state_key_and_replaced_rejection_keeps_app_headers() -> None:
    app = starlette_app()
    ann = (b"x-account", b"ann")
    first = await acall_asgi(app, asgi_get("/account", ann))
    assert (first.status, first.body) == (200, b"ok")
    refused = await acall_asgi(app, asgi_get("/account", ann))
    assert refused.status == 429
    assert refused.body.startswith(b"Too Many Requests: retry in ")
    assert refused.header(b"content-length") == str(len(refused.body)).encode()
    assert refused.header(b"content-type") == b"text/plain; charset=utf-8"
    assert refused.header(b"x-app") == b"kept"  # the app's own fields stay
    other = await acall_asgi(app, asgi_get("/account", (b"x-account", b"bo")))
    assert other.status == 200


@pytest.mark.anyio
async def test_asgi_computed_limit_per_plan_in_the_policy() -> None:
    app = starlette_app()
    free = await acall_asgi(app, asgi_get("/plan", (b"x-plan", b"free")))
    assert free.header(b"ratelimit-policy") == b'"1/minute";q=1;w=60'
    pro = await acall_asgi(app, asgi_get("/plan", (b"x-plan", b"pro")))
    # A new policy is a new counter: the pro plan's quota is its own.
    assert (pro.body, pro.header(b"ratelimit-policy")) == (b"3 2", b'"3/minute";q=3;w=60')
    assert (await acall_asgi(app, asgi_get("/plan", (b"x-plan", b"free")))).status == 429


# -- one Redis round trip, counted by Redis ------------------------------------------------


def redis_scripts_run(url: str) -> int:
    """EVAL and EVALSHA calls Redis has served (its own command statistics)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    served = 0
    for name in ("evalsha", "eval"):  # a first EVALSHA may fail (NOSCRIPT): not served
        stat = stats.get(f"cmdstat_{name}", {})
        served += int(stat.get("calls", 0)) - int(stat.get("failed_calls", 0))
        served -= int(stat.get("rejected_calls", 0))
    return served


@pytest.mark.redis
@pytest.mark.anyio
async def test_asgi_one_redis_script_per_route_limited_request(redis_url: str) -> None:
    from bridge.ratelimit.redis import RedisStore

    store = RedisStore(redis_url, prefix=f"route1:{uuid.uuid4().hex}:")
    app = starlette_app(store=store)
    before = redis_scripts_run(redis_url)
    for _ in range(3):
        await acall_asgi(app, asgi_get("/plan", (b"x-plan", b"pro")))
    assert redis_scripts_run(redis_url) - before == 3


@pytest.mark.redis
def test_wsgi_one_redis_script_per_route_limited_request(redis_url: str) -> None:
    from bridge.ratelimit.redis import RedisStore

    app = flask_app(store=RedisStore(redis_url, prefix=f"route2:{uuid.uuid4().hex}:"))
    before = redis_scripts_run(redis_url)
    statuses = [get(app, "/login", "POST").status for _ in range(3)]
    get(app, "/free")
    assert statuses == [200, 200, 429]
    assert redis_scripts_run(redis_url) - before == 3


def test_exempt_paths_keep_their_route_limit_in_one_check() -> None:
    """A default limit with the route-limited paths exempt: one check per request."""
    store = CountingStore()
    app = flask_app(store=store, limit="100/minute", exempt=["=/login"])
    response = get(app, "/login", "POST")
    assert store.checks == 1
    assert response.header(b"ratelimit-policy") == b'"2/minute";q=2;w=60'
    assert get(app, "/free").header(b"ratelimit-policy") == b'"100/minute";q=100;w=60'
    assert store.checks == 2


@pytest.mark.anyio
async def test_fastapi_router_dependency_shares_one_quota_per_plan() -> None:
    """The per-plan recipe: one named limit on a router, a quota per API key's plan."""
    from fastapi import APIRouter, Depends, FastAPI

    plans = {b"k-free": "2/minute", b"k-pro": "3/minute"}

    def plan_quota(request: RouteRequest) -> str | None:
        return plans.get(request.header(b"x-api-key") or b"")

    quota = limit(plan_quota, key=header_key("x-api-key"), name="api")
    assert quota.dependency is quota.dependency  # one dependency: FastAPI runs it once
    router = APIRouter(prefix="/v1", dependencies=[Depends(quota.dependency)])
    router.get("/a")(lambda: "a")
    router.get("/b")(lambda: "b")
    api = FastAPI()
    api.include_router(router)
    app = RateLimit(api, None, routes=True)

    def call(path: str, key: bytes) -> Request:
        return Request(path=path, headers=((b"host", b"t"), (b"x-api-key", key)))

    free = [await acall_asgi(app, call(path, b"k-free")) for path in ("/v1/a", "/v1/b", "/v1/a")]
    assert [r.status for r in free] == [200, 200, 429]  # one quota over both routes
    assert free[0].header(b"ratelimit-policy") == b'"2/minute";q=2;w=60'
    pro = await acall_asgi(app, call("/v1/b", b"k-pro"))
    assert pro.header(b"ratelimit-policy") == b'"3/minute";q=3;w=60'
    assert (await acall_asgi(app, call("/v1/a", b"unknown"))).header(b"ratelimit") is None


@pytest.mark.anyio
async def test_fastapi_endpoint_decorated_like_slowapi() -> None:
    """``@limit`` under FastAPI's route decorator, on an endpoint taking ``request``: FastAPI
    passes it by name and still sees the endpoint's own parameters."""
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/items")
    @limit("1/minute")
    async def items(request: FastAPIRequest, q: int = 0) -> dict[str, int]:
        decision: LimitDecision = request.scope["bridge.ratelimit"]
        return {"left": decision.remaining, "q": q}

    app = RateLimit(api, None, routes=True)
    call = Request(path="/items", query_string=b"q=3", headers=((b"host", b"t"),))
    first = await acall_asgi(app, call)
    assert (first.status, json.loads(first.body)) == (200, {"left": 0, "q": 3})
    assert first.header(b"ratelimit-policy") == b'"1/minute";q=1;w=60'
    refused = await acall_asgi(app, call)
    assert refused.status == 429
    assert refused.body.startswith(b"Too Many Requests: retry in ")
