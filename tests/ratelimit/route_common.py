"""What every route-limit app shares: its middleware's store, the plans, the rejection.

Every framework's app (tests/ratelimit/route_*.py) serves the same routes with the
same limits, so tests/ratelimit/test_route_servers.py asks each the same questions:

* ``/login``: ``@limit("2/minute")``; the body says how many are left (the decision
  read from the request the framework's way);
* ``/other``: the same limit on a view of the other kind (async where ``/login`` is
  sync, or the reverse);
* ``/both``: ``@limit("2/minute")`` under a middleware ``Rule("50/minute")``: both
  policies in the fields;
* ``/plan``: a limit computed per request from the API key's record (free 2/minute,
  pro 4/minute, no key: not limited), keyed by the API key;
* ``/user``: keyed by the identity an earlier middleware verified (``x-user``);
* ``/custom``: ``1/minute`` with a JSON rejection template;
* ``/free``: no limit at all.
"""

from __future__ import annotations

import os

from bridge.middleware import Response
from bridge.ratelimit import MemoryStore, RateLimit, RouteRequest, Rule, Store, header_key

#: The API keys' records: which plan each key pays for.
PLANS = {"free-key": "free", "pro-key": "pro"}
PLAN_LIMITS = {"free": "2/minute", "pro": "4/minute"}

by_api_key = header_key("x-api-key", fallback=None)

CUSTOM_429 = Response(
    429,
    ((b"content-type", b"application/json"),),
    b'{"error": "slow down", "retry_after": $retry_after, "policy": "$policy"}',
)


def plan_limit(request: RouteRequest) -> str | None:
    """The request's plan from its API key's record; no key: not limited."""
    raw = request.header(b"x-api-key")
    plan = None if raw is None else PLANS.get(raw.decode("latin-1"))
    return None if plan is None else PLAN_LIMITS[plan]


def store() -> Store:
    """A RedisStore when the test gives ``RL_REDIS_URL``, else a MemoryStore."""
    url = os.environ.get("RL_REDIS_URL")
    if not url:
        return MemoryStore()
    from bridge.ratelimit.redis import RedisStore

    return RedisStore(url, prefix=os.environ["RL_PREFIX"])


def options() -> dict[str, object]:
    """The middleware's options: no default limit, one path rule, routes on."""
    return {
        "limit": None,
        "rules": [Rule("50/minute", path="=/both", name="both")],
        "store": store(),
        "routes": True,
    }


def wrap(app: object) -> RateLimit:
    return RateLimit(app, **options())  # type: ignore[arg-type]
