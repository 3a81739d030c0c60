"""Route-level limits (``RateLimit(routes=True)`` + ``limit``): the route's fields merged
into the response, and a refusal replacing the view's placeholder, alike under WSGI and
ASGI. The "view" here is the inner app behind a route check made with ``limit``'s public
``check_sync`` / ``check_async`` (what the framework decorators call)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bridge.middleware import Response, detect_interface
from bridge.ratelimit import RateLimit, RouteLimit, RouteRequest, limit
from bridge.testing import Request, Seen

from . import Case, Step

POLICY = b"ratelimit-policy"
STATE = b"ratelimit"
REJECTED_TEXT = b"Too Many Requests: retry in 30 seconds.\n"
PLACEHOLDER = b"the view's placeholder"


def routed(route: RouteLimit, app: Any) -> Any:
    """``app`` behind a route check, as a decorated view is: refused, it answers a
    placeholder 429 (with a field of its own) that the middleware replaces."""
    if detect_interface(app) == "wsgi":

        def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if isinstance(route.check_sync(None, environ, "view"), Response):
                start_response("429 Too Many Requests", [("x-view", "placeholder")])
                return [PLACEHOLDER]
            result: Iterable[bytes] = app(environ, start_response)
            return result

        return wsgi

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if isinstance(await route.check_async(None, scope, "view"), Response):
            headers = [(b"x-view", b"placeholder")]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": PLACEHOLDER})
            return
        await app(scope, receive, send)

    return asgi


def limited(
    route: RouteLimit, default: str | None = None, **options: Any
) -> Callable[[Any, Any], Any]:
    return lambda app, clock: RateLimit(
        routed(route, app), default, routes=True, clock=clock, **options
    )


def not_called(seen: Seen | None) -> None:
    assert seen is None, "the view must not run for a refused request"


def plan(request: RouteRequest) -> str | None:
    tier = request.header(b"x-plan")
    return {b"free": "1/minute", b"pro": "3/minute"}.get(tier or b"")


CASES = [
    Case(
        id="ratelimit-route-only",
        build=limited(limit("2/minute")),
        steps=[
            Step(
                status=200,
                has_headers=[(POLICY, b'"2/minute";q=2;w=60'), (STATE, b'"2/minute";r=1;t=30')],
            ),
            Step(status=200, has_headers=[(STATE, b'"2/minute";r=0;t=60')]),
            Step(
                status=429,
                headers=[
                    (b"x-view", b"placeholder"),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(REJECTED_TEXT)).encode()),
                    (b"retry-after", b"30"),
                    (POLICY, b'"2/minute";q=2;w=60'),
                    (STATE, b'"2/minute";r=0;t=60'),
                ],
                body=REJECTED_TEXT,
                seen=not_called,
            ),
            Step(advance=30, status=200, has_headers=[(STATE, b'"2/minute";r=0;t=60')]),
        ],
    ),
    Case(
        id="ratelimit-route-under-a-rule",
        build=limited(limit("2/minute"), "10/minute"),
        steps=[
            Step(
                status=200,
                has_headers=[
                    (POLICY, b'"2/minute";q=2;w=60, "10/minute";q=10;w=60'),
                    (STATE, b'"2/minute";r=1;t=30, "10/minute";r=9;t=6'),
                ],
            ),
            Step(status=200),
            Step(
                status=429,
                has_headers=[
                    (POLICY, b'"2/minute";q=2;w=60, "10/minute";q=10;w=60'),
                    (STATE, b'"2/minute";r=0;t=60, "10/minute";r=7;t=18'),
                ],
                body=REJECTED_TEXT,
            ),
        ],
    ),
    Case(
        id="ratelimit-route-own-template-over-error-format",
        build=limited(
            limit(
                "1/minute",
                rejection=Response(
                    429,
                    ((b"content-type", b"application/json"),),
                    b'{"retry_after": $retry_after, "policy": "$policy"}',
                ),
            ),
            error_format="problem+json",
        ),
        steps=[
            Step(status=200),
            Step(
                status=429,
                has_headers=[(b"content-type", b"application/json"), (b"retry-after", b"60")],
                body=b'{"retry_after": 60, "policy": "1/minute"}',
            ),
        ],
    ),
    Case(
        id="ratelimit-route-limit-per-plan",
        build=limited(limit(plan)),
        steps=[
            Step(
                request=Request(headers=[(b"x-plan", b"pro")]),
                status=200,
                has_headers=[(POLICY, b'"3/minute";q=3;w=60'), (STATE, b'"3/minute";r=2;t=20')],
            ),
            Step(
                request=Request(headers=[(b"x-plan", b"free")]),
                status=200,
                has_headers=[(POLICY, b'"1/minute";q=1;w=60')],
            ),
            Step(request=Request(headers=[(b"x-plan", b"free")]), status=429),
            Step(status=200, lacks_headers=[POLICY, STATE]),  # no plan: not limited
        ],
    ),
]
