"""SecurityHeaders cases."""

from __future__ import annotations

from typing import Any

from bridge import SecurityHeaders
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
BASIC = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def security(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return SecurityHeaders(app, clock=clock, **options)

    return build


def nonce_seen(value: str) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        assert seen.head.values.get("bridge.csp_nonce") == value

    return check


CASES = [
    Case(
        "security-basic-over-http-has-no-hsts",
        security(),
        [Step(status=200, headers=[TEXT, *BASIC], body=b"hello")],
    ),
    Case(
        "security-basic-over-https-has-hsts",
        security(),
        [Step(Request(scheme="https"), status=200, headers=[TEXT, HSTS, *BASIC])],
    ),
    Case(
        "security-app-header-kept-unless-override",
        security(),
        [Step(status=200, has_headers=[(b"X-Frame-Options", b"DENY")], lacks_headers=[])],
        inner=InnerApp(headers=(TEXT, (b"X-Frame-Options", b"DENY"))),
    ),
    Case(
        "security-override-replaces-app-header",
        security(override=["frame_options"]),
        [
            Step(
                status=200,
                headers=[
                    TEXT,
                    (b"Referrer-Policy", b"unsafe-url"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ],
            )
        ],
        inner=InnerApp(
            headers=(TEXT, (b"X-Frame-Options", b"DENY"), (b"Referrer-Policy", b"unsafe-url"))
        ),
    ),
    Case(
        "security-csp-nonce-per-request-readable-by-app",
        security(preset="strict", nonce_factory=lambda: "n0nce"),
        [
            Step(
                Request(scheme="https"),
                status=200,
                has_headers=[
                    (
                        b"content-security-policy",
                        b"default-src 'self'; script-src 'self' 'nonce-n0nce'; object-src 'none'; "
                        b"base-uri 'none'; frame-ancestors 'none'",
                    ),
                    (b"strict-transport-security", b"max-age=63072000; includeSubDomains; preload"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-embedder-policy", b"require-corp"),
                ],
                seen=nonce_seen("n0nce"),
            )
        ],
    ),
    Case(
        "security-report-only-and-custom-values",
        security(
            preset="none",
            csp_report_only="default-src 'self'; report-uri /csp",
            permissions_policy="camera=()",
            corp="cross-origin",
        ),
        [
            Step(
                status=200,
                headers=[
                    TEXT,
                    (
                        b"content-security-policy-report-only",
                        b"default-src 'self'; report-uri /csp",
                    ),
                    (b"permissions-policy", b"camera=()"),
                    (b"cross-origin-resource-policy", b"cross-origin"),
                ],
            )
        ],
    ),
    Case(
        "security-exempt-paths",
        security(exempt=["/healthz"]),
        [
            Step(Request(path="/healthz"), status=200, headers=[TEXT]),
            Step(Request(path="/healthz/deep"), status=200, headers=[TEXT]),
            Step(Request(path="/healthzx"), status=200, headers=[TEXT, *BASIC]),
            Step(Request(path="/mnt/healthz", root_path="/mnt"), status=200, headers=[TEXT]),
        ],
    ),
    Case(
        "security-disabled-header",
        security(frame_options=None, coop=None),
        [Step(status=200, headers=[TEXT, BASIC[0], BASIC[2]])],
    ),
    Case(
        "security-app-error-500-carries-the-headers",
        security(),
        [Step(status=500, body=b"Internal Server Error\n", has_headers=list(BASIC))],
        inner=InnerApp(fail="after_start"),
    ),
    Case(
        "security-keeps-several-set-cookie",
        security(preset="none", content_type_options="nosniff"),
        [
            Step(
                status=200,
                headers=[
                    TEXT,
                    (b"set-cookie", b"a=1"),
                    (b"set-cookie", b"b=2"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            )
        ],
        inner=InnerApp(headers=(TEXT, (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"))),
    ),
]
