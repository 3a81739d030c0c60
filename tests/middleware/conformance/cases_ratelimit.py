"""Rate-limit cases: exhaustion and recovery under a fake clock, headers, rules, keys."""

from __future__ import annotations

import re
from collections.abc import Callable

from bridge.middleware import Response
from bridge.middleware.proxy_headers import ProxyHeaders
from bridge.ratelimit import ConcurrencyLimit, RateLimit, Rule, header_key
from bridge.testing import InnerApp, Request, Seen

from . import Case, Step

POLICY = b"ratelimit-policy"
STATE = b"ratelimit"
FIELDS = (POLICY, STATE)


def state(value: bytes) -> tuple[bytes, bytes]:
    return (STATE, value)


def not_called(seen: Seen | None) -> None:
    assert seen is None, "the app must not be called for a rejected request"


REJECTED_TEXT = b"Too Many Requests: retry in 20 seconds.\n"

LOGIN_TEMPLATE = Response(
    429,
    ((b"content-type", b"application/json"),),
    b'{"error": "too many attempts", "retry_after": $retry_after, "policy": "$policy"}',
)
LOGIN_REJECTED = b'{"error": "too many attempts", "retry_after": 30, "policy": "2/minute"}'


def remaining(count: int) -> Callable[[Seen | None], None]:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        assert seen.head.values["bridge.ratelimit"].remaining == count

    return check


def proxied(forwarded_for: bytes) -> Request:
    return Request(client=("10.0.0.1", 40000), headers=[(b"x-forwarded-for", forwarded_for)])


CASES = [
    Case(
        id="ratelimit-gcra-exhaustion-and-recovery",
        build=lambda app, clock: RateLimit(app, "3/minute", clock=clock),
        steps=[
            Step(
                status=200,
                has_headers=[(POLICY, b'"3/minute";q=3;w=60'), state(b'"3/minute";r=2;t=20')],
            ),
            Step(status=200, has_headers=[state(b'"3/minute";r=1;t=40')]),
            Step(status=200, has_headers=[state(b'"3/minute";r=0;t=60')]),
            Step(
                status=429,
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(REJECTED_TEXT)).encode()),
                    (b"retry-after", b"20"),
                    (POLICY, b'"3/minute";q=3;w=60'),
                    state(b'"3/minute";r=0;t=60'),
                ],
                body=REJECTED_TEXT,
                seen=not_called,
            ),
            Step(advance=19.5, status=429, has_headers=[(b"retry-after", b"1")]),
            Step(advance=0.5, status=200, has_headers=[state(b'"3/minute";r=0;t=60')]),
            Step(advance=60, status=200, has_headers=[state(b'"3/minute";r=2;t=20')]),
        ],
    ),
    Case(
        id="ratelimit-nginx-burst-nodelay",
        build=lambda app, clock: RateLimit(app, "10/second burst 2", clock=clock),
        steps=[
            Step(status=200),
            Step(status=200),
            Step(status=200, has_headers=[state(b'"10/second burst 2";r=0;t=1')]),
            Step(status=429, has_headers=[(b"retry-after", b"1")]),
            Step(advance=0.1, status=200),
            Step(status=429),
        ],
    ),
    Case(
        id="ratelimit-fixed-window-problem-json-legacy-headers",
        build=lambda app, clock: RateLimit(
            app,
            "2/minute",
            algorithm="fixed_window",
            error_format="problem+json",
            legacy_headers=True,
            clock=clock,
        ),
        steps=[
            # The fake clock starts at 1000.0: the window is [960, 1020).
            Step(
                status=200,
                has_headers=[
                    state(b'"2/minute";r=1;t=20'),
                    (b"x-ratelimit-limit", b"2"),
                    (b"x-ratelimit-remaining", b"1"),
                    (b"x-ratelimit-reset", b"20"),
                ],
            ),
            Step(advance=10, status=200),
            Step(
                status=429,
                has_headers=[
                    (b"content-type", b"application/problem+json"),
                    (b"retry-after", b"10"),
                    (b"x-ratelimit-remaining", b"0"),
                ],
                seen=not_called,
            ),
            Step(advance=10, status=200, has_headers=[state(b'"2/minute";r=1;t=60')]),
        ],
    ),
    Case(
        id="ratelimit-sliding-window",
        build=lambda app, clock: RateLimit(
            app, "4/minute", algorithm="sliding_window", clock=clock
        ),
        steps=[
            *[Step(status=200) for _ in range(4)],
            Step(status=429),
            # At 1050 (half way into [1020, 1080)) the 4 of the previous window weigh 2.
            Step(advance=50, status=200, has_headers=[state(b'"4/minute";r=1;t=90')]),
            Step(status=200),
            Step(status=429),
        ],
    ),
    Case(
        id="ratelimit-two-policies-denial-consumes-nothing",
        build=lambda app, clock: RateLimit(app, "2/second;3/minute", clock=clock),
        steps=[
            Step(status=200),
            Step(status=200, has_headers=[state(b'"2/second";r=0;t=1, "3/minute";r=1;t=40')]),
            Step(status=429, has_headers=[(b"retry-after", b"1")]),
            Step(advance=1, status=200),
            Step(
                advance=1,
                status=429,
                has_headers=[
                    (b"retry-after", b"18"),
                    state(b'"2/second";r=2;t=0, "3/minute";r=0;t=58'),
                ],
            ),
        ],
    ),
    Case(
        id="ratelimit-rules-exemptions-and-default",
        build=lambda app, clock: RateLimit(
            app,
            "5/minute",
            rules=[
                Rule("1/minute", path="/login", methods={"POST"}),
                Rule(None, path="/static"),
            ],
            exempt=["/health"],
            clock=clock,
        ),
        steps=[
            Step(Request(method="POST", path="/login"), status=200),
            Step(Request(method="POST", path="/login"), status=429),
            Step(
                Request(method="GET", path="/login"),
                status=200,
                has_headers=[state(b'"5/minute";r=4;t=12')],
            ),
            Step(Request(path="/static/app.js"), status=200, lacks_headers=FIELDS),
            Step(Request(path="/health"), status=200, lacks_headers=FIELDS),
        ],
    ),
    Case(
        id="ratelimit-api-key-header-and-cost",
        build=lambda app, clock: RateLimit(
            app,
            "10/minute",
            key=header_key("x-api-key"),
            cost=lambda head: 5 if head.method == "POST" else 1,
            clock=clock,
        ),
        steps=[
            Step(Request(method="POST", headers=[(b"x-api-key", b"a")]), status=200),
            Step(Request(method="POST", headers=[(b"x-api-key", b"a")]), status=200),
            Step(Request(headers=[(b"x-api-key", b"a")]), status=429),
            Step(
                Request(headers=[(b"x-api-key", b"b")]),
                status=200,
                has_headers=[state(b'"10/minute";r=9;t=6')],
            ),
            Step(Request(headers=[(b"x-api-key", b"a" * 5000 + b"\xff")]), status=200),
        ],
    ),
    Case(
        id="ratelimit-forwarded-header-is-not-the-key",
        build=lambda app, clock: RateLimit(app, "1/minute", clock=clock),
        steps=[
            Step(Request(headers=[(b"x-forwarded-for", b"1.1.1.1")]), status=200),
            Step(Request(headers=[(b"x-forwarded-for", b"2.2.2.2")]), status=429),
            Step(Request(client=("10.9.9.9", 1)), status=200),
        ],
    ),
    Case(
        # Behind a trusted proxy the key is the client ProxyHeaders resolved, not the proxy.
        id="ratelimit-behind-proxyheaders-keys-on-the-resolved-client",
        build=lambda app, clock: ProxyHeaders(
            RateLimit(app, "1/minute", clock=clock), trusted=["10.0.0.1"], clock=clock
        ),
        steps=[
            Step(proxied(b"203.0.113.7"), status=200),
            Step(proxied(b"203.0.113.7"), status=429),
            Step(proxied(b"198.51.100.2"), status=200),
            # A client prepending a fake hop changes nothing: the proxy appended the real one.
            Step(proxied(b"1.2.3.4, 203.0.113.7"), status=429),
            # An untrusted peer's forwarded header is ignored: keyed on the peer itself.
            Step(
                Request(client=("192.0.2.50", 1), headers=[(b"x-forwarded-for", b"9.9.9.9")]),
                status=200,
            ),
            Step(
                Request(client=("192.0.2.50", 1), headers=[(b"x-forwarded-for", b"8.8.8.8")]),
                status=429,
            ),
        ],
    ),
    Case(
        id="ratelimit-no-client-address-passes",
        build=lambda app, clock: RateLimit(app, "1/minute", clock=clock),
        steps=[
            Step(Request(client=None), status=200, lacks_headers=FIELDS),
            Step(Request(client=None), status=200, lacks_headers=FIELDS),
        ],
    ),
    Case(
        id="ratelimit-headers-off",
        build=lambda app, clock: RateLimit(app, "1/minute", headers=False, clock=clock),
        steps=[
            Step(status=200, lacks_headers=FIELDS),
            Step(status=429, has_headers=[(b"retry-after", b"60")], lacks_headers=FIELDS),
        ],
    ),
    Case(
        id="ratelimit-dry-run-never-rejects",
        build=lambda app, clock: RateLimit(app, "1/minute", dry_run=True, clock=clock),
        steps=[
            Step(status=200),
            Step(status=200, has_headers=[state(b'"1/minute";r=0;t=60')]),
        ],
    ),
    Case(
        id="ratelimit-stacked-limiters-list-both-policies",
        build=lambda app, clock: RateLimit(
            RateLimit(
                app, "2/second", rules=[Rule("1/minute", path=re.compile(r"/a.*"))], clock=clock
            ),
            "100/day",
            clock=clock,
        ),
        steps=[
            Step(
                Request(path="/abc"),
                status=200,
                has_headers=[(POLICY, b'"1/minute";q=1;w=60, "100/day";q=100;w=86400')],
            ),
        ],
    ),
    Case(
        id="ratelimit-rule-template-rejection-and-decision-on-the-request",
        build=lambda app, clock: RateLimit(
            app,
            "100/minute",
            rules=[Rule("2/minute", path="=/login", methods="POST", rejection=LOGIN_TEMPLATE)],
            clock=clock,
        ),
        steps=[
            Step(Request(method="POST", path="/login"), status=200, seen=remaining(1)),
            Step(Request(method="POST", path="/login"), status=200, seen=remaining(0)),
            Step(
                Request(method="POST", path="/login"),
                status=429,
                headers=[
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(LOGIN_REJECTED)).encode()),
                    (b"retry-after", b"30"),
                    (POLICY, b'"2/minute";q=2;w=60'),
                    state(b'"2/minute";r=0;t=60'),
                ],
                body=LOGIN_REJECTED,
                seen=not_called,
            ),
            Step(Request(path="/"), status=200, seen=remaining(99)),
        ],
    ),
    Case(
        id="concurrency-limit-released-after-completion-and-app-error",
        build=lambda app, clock: ConcurrencyLimit(app, 1, clock=clock),
        inner=InnerApp(fail="before_start"),
        steps=[Step(status=500), Step(status=500), Step(status=500)],
    ),
    Case(
        id="concurrency-limit-sequential-requests-pass",
        build=lambda app, clock: ConcurrencyLimit(
            RateLimit(app, "10/second", clock=clock), 1, clock=clock
        ),
        steps=[Step(status=200), Step(status=200), Step(status=200)],
    ),
]
