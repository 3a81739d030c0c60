"""CustomHeaders cases."""

from __future__ import annotations

from typing import Any

from bridge import CustomHeaders
from bridge.testing import FakeClock, InnerApp, Request, Seen

from . import Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
SERVER = (b"Server", b"gunicorn/99")


def headers(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return CustomHeaders(app, clock=clock, **options)

    return build


def request_headers(expected: tuple[tuple[bytes, bytes], ...]) -> Any:
    def check(seen: Seen | None) -> None:
        assert seen is not None
        assert seen.head.headers == expected

    return check


CASES = [
    Case(
        "headers-remove-server-and-cache-static",
        headers(remove_response=["server"]),
        [Step(status=200, headers=[TEXT])],
        inner=InnerApp(headers=(TEXT, SERVER)),
    ),
    Case(
        "headers-per-path-prefix",
        headers(set_response={"Cache-Control": "public, max-age=3600"}, paths=["/static"]),
        [
            Step(
                Request(path="/static/app.css"),
                status=200,
                headers=[TEXT, (b"cache-control", b"public, max-age=3600")],
            ),
            Step(Request(path="/api"), status=200, headers=[TEXT, (b"Cache-Control", b"no-store")]),
        ],
        inner=InnerApp(headers=(TEXT, (b"Cache-Control", b"no-store"))),
    ),
    Case(
        "headers-default-does-not-override-app",
        headers(default_response={"cache-control": "no-store", "x-robots-tag": "noindex"}),
        [
            Step(
                status=200,
                headers=[TEXT, (b"Cache-Control", b"max-age=5"), (b"x-robots-tag", b"noindex")],
            )
        ],
        inner=InnerApp(headers=(TEXT, (b"Cache-Control", b"max-age=5"))),
    ),
    Case(
        "headers-append-keeps-set-cookie",
        headers(append_response=[("set-cookie", "c=3")]),
        [
            Step(
                status=200,
                headers=[
                    TEXT,
                    (b"Set-Cookie", b"a=1"),
                    (b"Set-Cookie", b"b=2"),
                    (b"set-cookie", b"c=3"),
                ],
            )
        ],
        inner=InnerApp(headers=(TEXT, (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"))),
    ),
    Case(
        "headers-request-edits-reach-the-app",
        headers(
            set_request={"X-Env": "prod"},
            append_request=[("x-tag", "b")],
            remove_request=["x-debug"],
            exempt=["/raw"],
        ),
        [
            Step(
                Request(
                    headers=[
                        (b"host", b"h"),
                        (b"x-debug", b"1"),
                        (b"x-env", b"dev"),
                        (b"x-tag", b"a"),
                    ]
                ),
                status=200,
                seen=request_headers(((b"host", b"h"), (b"x-tag", b"a, b"), (b"x-env", b"prod"))),
            ),
            Step(
                Request(path="/raw", headers=[(b"host", b"h"), (b"x-debug", b"1")]),
                status=200,
                seen=request_headers(((b"host", b"h"), (b"x-debug", b"1"))),
            ),
        ],
    ),
]
