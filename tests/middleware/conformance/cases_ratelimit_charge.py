"""Rate limits charged once the response is known: failed logins, LLM tokens.

The inner app answers 200 "hello"; ``Outcomes`` (between the limiter and it)
turns that into what a login view or an LLM endpoint would say, from the
request's query: ``wrong`` makes it a 401, ``tokens=N`` adds
``x-tokens-used: N``, ``charge=N`` has the "app" charge N units on its
decision. The same under both interfaces, so the cases compare the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.middleware import Exchange, Forward, Middleware, RequestHead, ResponseHead
from bridge.ratelimit import RateLimit, Rule, response_cost
from bridge.testing import Request, Seen

from . import Case, Step

POLICY = b"ratelimit-policy"
STATE = b"ratelimit"


def state(value: bytes) -> tuple[bytes, bytes]:
    return (STATE, value)


def login(query: bytes = b"") -> Request:
    return Request(method="POST", path="/login", query_string=query)


def query_values(head: RequestHead) -> dict[str, str]:
    pairs = (part.partition("=") for part in head.query_string.decode().split("&") if part)
    return {name: value for name, _, value in pairs}


class Outcomes(Middleware):
    """Plays the app's part: a 401 for ``wrong``, ``x-tokens-used`` for ``tokens=N``."""

    def exchange(self, head: RequestHead, now: float) -> Exchange:
        return _OutcomesExchange(head, now)


class _OutcomesExchange(Exchange):
    def request(self) -> Forward:
        charge = query_values(self.head).get("charge")
        if charge is not None:  # what a view does with the decision it finds on the request
            self.head.values["bridge.ratelimit"].charge(int(charge))
        return Forward(self.head)

    def response(self, head: ResponseHead) -> ResponseHead:
        values = query_values(self.head)
        if "wrong" in values:
            head = head.replace(status=401)
        if "tokens" in values:
            head = head.replace(
                headers=(*head.headers, (b"x-tokens-used", values["tokens"].encode()))
            )
        return head


def limited(**options: Any) -> Callable[[Any, Any], Any]:
    return lambda app, clock: RateLimit(Outcomes(app, clock=clock), clock=clock, **options)


def rejected(seen: Seen | None) -> None:
    assert seen is None, "a spent quota refuses before the app runs"


FAILED_LOGINS = Rule("3/minute", path="=/login", methods="POST", count_when=(401, 403))

CASES = [
    Case(
        id="ratelimit-count-when-counts-failed-logins-only",
        build=limited(limit=None, rules=[FAILED_LOGINS]),
        steps=[
            # Correct logins give their reservation back: the quota is untouched.
            Step(login(), status=200, has_headers=[state(b'"3/minute";r=3;t=0')]),
            Step(login(), status=200, has_headers=[state(b'"3/minute";r=3;t=0')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=2;t=20')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=1;t=40')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=0;t=60')]),
            # Spent: refused before the app runs, even the right password.
            Step(login(), status=429, has_headers=[(b"retry-after", b"20")], seen=rejected),
            Step(login(), advance=20, status=200, has_headers=[state(b'"3/minute";r=1;t=40')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=0;t=60')]),
            Step(Request(path="/"), status=200, lacks_headers=[STATE]),  # no rule
        ],
    ),
    Case(
        id="ratelimit-count-when-fixed-window",
        build=limited(limit=None, rules=[FAILED_LOGINS], algorithm="fixed_window"),
        steps=[
            Step(login(), status=200, has_headers=[state(b'"3/minute";r=3;t=0')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=2;t=20')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=1;t=20')]),
            Step(login(), status=200, has_headers=[state(b'"3/minute";r=1;t=20')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"3/minute";r=0;t=20')]),
            Step(login(), status=429, seen=rejected),
            Step(
                login(b"wrong"), advance=20, status=401, has_headers=[state(b'"3/minute";r=2;t=60')]
            ),
        ],
    ),
    Case(
        id="ratelimit-count-when-sliding-window-predicate",
        build=limited(
            limit="2/minute",
            algorithm="sliding_window",
            count_when=lambda response: response.status >= 400,
        ),
        steps=[
            Step(login(), status=200, has_headers=[state(b'"2/minute";r=2;t=0')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"2/minute";r=1;t=80')]),
            Step(login(b"wrong"), status=401, has_headers=[state(b'"2/minute";r=0;t=80')]),
            Step(login(), status=429, has_headers=[(b"retry-after", b"50")], seen=rejected),
        ],
    ),
    Case(
        id="ratelimit-response-cost-from-a-header",
        build=limited(
            limit="1000/hour", algorithm="fixed_window", cost=response_cost("x-tokens-used")
        ),
        steps=[
            Step(
                Request(query_string=b"tokens=400"),
                status=200,
                has_headers=[
                    (POLICY, b'"1000/hour";q=1000;w=3600'),
                    state(b'"1000/hour";r=600;t=2600'),
                ],
            ),
            Step(Request(), status=200, has_headers=[state(b'"1000/hour";r=600;t=2600')]),
            # The work is done: the charge goes past the quota, and the next request waits.
            Step(
                Request(query_string=b"tokens=700"),
                status=200,
                has_headers=[state(b'"1000/hour";r=0;t=2600')],
            ),
            Step(status=429, has_headers=[(b"retry-after", b"2600")], seen=rejected),
            Step(advance=2600, status=200, has_headers=[state(b'"1000/hour";r=1000;t=0')]),
        ],
    ),
    Case(
        id="ratelimit-response-cost-from-the-app",
        build=limited(limit="10/minute", cost=response_cost()),
        steps=[
            Step(Request(query_string=b"charge=4"), status=200),
            Step(Request(query_string=b"charge=5"), status=200),
            Step(Request(), status=200),  # charges nothing: response_cost()'s default
            Step(Request(query_string=b"charge=1"), status=200),
            Step(
                Request(),
                status=429,
                has_headers=[state(b'"10/minute";r=0;t=60'), (b"retry-after", b"6")],
                seen=rejected,
            ),
        ],
    ),
    Case(
        id="ratelimit-response-cost-app-charge-wins-over-count-when",
        build=limited(limit="2/minute", count_when=(401,)),
        steps=[
            Step(Request(query_string=b"charge=2"), status=200),  # the app says: counts, twice
            Step(Request(), status=429, seen=rejected),
        ],
    ),
]
