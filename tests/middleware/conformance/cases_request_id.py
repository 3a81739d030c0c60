"""RequestId cases, including the bad-input list."""

from __future__ import annotations

import itertools
from typing import Any

from bridge import RequestId
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
XRID = b"x-request-id"


def request_id(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        counter = itertools.count(1)  # a fresh sequence per interface
        return RequestId(app, clock=clock, generator=lambda: f"gen-{next(counter)}", **options)

    return build


def incoming(value: bytes, name: bytes = XRID) -> Request:
    return Request(headers=[(b"host", b"t"), (name, value)])


def app_saw(value: str, name: bytes = XRID) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        assert seen.head.values.get("bridge.request_id") == value
        assert seen.head.header_values(name) == [value.encode()]

    return check


CASES = [
    Case(
        "request-id-generated-set-on-response-and-seen-by-app",
        request_id(),
        [
            Step(status=200, headers=[TEXT, (b"X-Request-ID", b"gen-1")], seen=app_saw("gen-1")),
            Step(status=200, headers=[TEXT, (b"X-Request-ID", b"gen-2")], seen=app_saw("gen-2")),
        ],
    ),
    Case(
        "request-id-incoming-ignored-unless-trusted",
        request_id(),
        [
            Step(
                incoming(b"from-client"),
                has_headers=[(b"X-Request-ID", b"gen-1")],
                seen=app_saw("gen-1"),
            )
        ],
    ),
    Case(
        "request-id-trusted-incoming-kept-when-valid",
        request_id(trust_incoming=True),
        [
            Step(incoming(b"abc-123"), has_headers=[(b"X-Request-ID", b"abc-123")]),
            Step(
                incoming(b"a b~c" + b"x" * 195),
                has_headers=[(b"X-Request-ID", b"a b~c" + b"x" * 195)],
            ),
            Step(incoming(b"x" * 201), has_headers=[(b"X-Request-ID", b"gen-1")]),
            Step(incoming(b"caf\xc3\xa9"), has_headers=[(b"X-Request-ID", b"gen-2")]),
            Step(incoming(b"a\x7fb"), has_headers=[(b"X-Request-ID", b"gen-3")]),
            Step(incoming(b"a, b"), has_headers=[(b"X-Request-ID", b"a, b")]),
            Step(incoming(b""), has_headers=[(b"X-Request-ID", b"gen-4")], seen=app_saw("gen-4")),
        ],
    ),
    Case(
        "request-id-custom-header-replaces-apps-value",
        request_id(header="Correlation-Id"),
        [
            Step(
                incoming(b"client", b"correlation-id"),
                status=200,
                headers=[TEXT, (b"Correlation-Id", b"gen-1")],
                seen=app_saw("gen-1", b"correlation-id"),
            )
        ],
        inner=InnerApp(headers=(TEXT, (b"correlation-id", b"from-app"))),
    ),
    *(
        Case(  # the id of a failed request is the one a user reports
            f"request-id-app-error-500-carries-the-id-{fail.replace('_', '-')}",
            request_id(),
            [
                Step(
                    status=500,
                    body=b"Internal Server Error\n",
                    has_headers=[(b"X-Request-ID", b"gen-1")],
                )
            ],
            inner=InnerApp(fail=fail),
        )
        for fail in ("before_start", "after_start")
    ),
]
