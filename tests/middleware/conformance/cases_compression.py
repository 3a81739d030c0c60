"""Compression cases, including the bad-input list (compressed bytes are deterministic)."""

from __future__ import annotations

from typing import Any

from bridge import Compression
from bridge.testing import FakeClock, InnerApp, Request

from . import Case, Step

TEXT = (b"content-type", b"text/plain; charset=utf-8")
VARY = (b"vary", b"Accept-Encoding")
BODY = [b"a" * 400, b"b" * 400, b"", b"c" * 10]
WHOLE = b"".join(BODY)


def compression(**options: Any) -> Any:
    def build(app: Any, clock: FakeClock) -> Any:
        return Compression(app, clock=clock, **options)

    return build


def accepting(value: bytes | None, **kw: Any) -> Request:
    headers = [(b"host", b"t")] + ([(b"accept-encoding", value)] if value is not None else [])
    return Request(headers=headers, **kw)


def plain(request: Request, *headers: tuple[bytes, bytes]) -> Step:
    return Step(request, status=200, headers=[*headers, VARY], body=WHOLE)


def inner(*headers: tuple[bytes, bytes], status: int = 200, body: Any = BODY) -> InnerApp:
    return InnerApp(status=status, headers=(TEXT, *headers), body=body)


CASES = [
    Case(
        "compression-gzip-streamed-drops-length-merges-vary-weakens-etag",
        compression(brotli=False, zstd=False),
        [
            Step(
                accepting(b"gzip, deflate"),
                status=200,
                headers=[
                    TEXT,
                    (b"ETag", b'W/"v1"'),
                    (b"vary", b"Cookie, Accept-Encoding"),
                    (b"content-encoding", b"gzip"),
                ],
            )
        ],
        inner=inner(
            (b"Content-Length", str(len(WHOLE)).encode()),
            (b"ETag", b'"v1"'),
            (b"Accept-Ranges", b"bytes"),
            (b"Vary", b"Cookie"),
        ),
    ),
    Case(
        "compression-q-values-and-identity",
        compression(brotli=False, zstd=False),
        [
            plain(accepting(b"gzip;q=0"), TEXT),
            plain(accepting(b"identity;q=1, gzip;q=0.5"), TEXT),
            plain(accepting(b"br"), TEXT),  # offered nothing it accepts
            plain(accepting(None), TEXT),
            Step(accepting(b"*;q=0.1"), has_headers=[(b"content-encoding", b"gzip")]),
            Step(accepting(b"GZIP;Q=0.001"), has_headers=[(b"content-encoding", b"gzip")]),
            Step(accepting(b"identity;q=0, gzip"), has_headers=[(b"content-encoding", b"gzip")]),
        ],
        inner=inner(),
    ),
    Case(
        "compression-malformed-accept-encoding-sends-identity",
        compression(brotli=False, zstd=False),
        [
            plain(accepting(b"gzip;q=1.5"), TEXT),
            plain(accepting(b"gzip;q=-1"), TEXT),
            plain(accepting(b"gzip;q=0.1234"), TEXT),
            plain(accepting(b"gzip;level=9"), TEXT),
            plain(accepting(b"g zip"), TEXT),
            plain(accepting(b"caf\xc3\xa9"), TEXT),
            Step(
                accepting(b", ".join([b"x-custom;q=0.5"] * 1000) + b", gzip"),
                has_headers=[(b"content-encoding", b"gzip")],
            ),
        ],
        inner=inner(),
    ),
    Case(
        "compression-never-compresses",
        compression(brotli=False, zstd=False),
        [plain(accepting(b"gzip"), TEXT, (b"Content-Encoding", b"br"))],
        inner=inner((b"Content-Encoding", b"br")),
    ),
    Case(
        "compression-skips-small-known-length",
        compression(brotli=False, zstd=False, minimum_size=2000),
        [plain(accepting(b"gzip"), TEXT, (b"content-length", b"810"))],
        inner=inner((b"content-length", b"810")),
    ),
    Case(
        "compression-skips-excluded-types-and-event-streams",
        compression(brotli=False, zstd=False),
        [plain(accepting(b"gzip"), (b"content-type", b"image/png"))],
        inner=InnerApp(headers=((b"content-type", b"image/png"),), body=BODY),
    ),
    Case(
        "compression-svg-is-text",
        compression(brotli=False, zstd=False),
        [Step(accepting(b"gzip"), has_headers=[(b"content-encoding", b"gzip")])],
        inner=InnerApp(headers=((b"content-type", b"image/svg+xml"),), body=BODY),
    ),
    Case(
        "compression-event-stream-sent-as-is",
        compression(brotli=False, zstd=False),
        [plain(accepting(b"gzip"), (b"content-type", b"text/event-stream"))],
        inner=InnerApp(headers=((b"content-type", b"text/event-stream"),), body=BODY),
    ),
    Case(
        "compression-no-transform-sent-as-is",
        compression(brotli=False, zstd=False),
        [plain(accepting(b"gzip"), TEXT, (b"cache-control", b"public, no-transform"))],
        inner=inner((b"cache-control", b"public, no-transform")),
    ),
    Case(
        "compression-206-sent-as-is",
        compression(brotli=False, zstd=False),
        [
            Step(
                accepting(b"gzip"),
                status=206,
                headers=[TEXT, (b"content-range", b"bytes 0-809/2000"), VARY],
                body=WHOLE,
            )
        ],
        inner=inner((b"content-range", b"bytes 0-809/2000"), status=206),
    ),
    Case(
        "compression-head-and-304-sent-as-is",
        compression(brotli=False, zstd=False),
        [
            Step(
                accepting(b"gzip", method="HEAD"), status=200, lacks_headers=[b"content-encoding"]
            ),
        ],
        inner=inner(),
    ),
    Case(
        "compression-304-sent-as-is",
        compression(brotli=False, zstd=False),
        [Step(accepting(b"gzip"), status=304, headers=[VARY], body=b"")],
        inner=InnerApp(status=304, headers=(), body=()),
    ),
    Case(
        "compression-exempt-paths",
        compression(brotli=False, zstd=False, exempt=["/raw"]),
        [Step(accepting(b"gzip", path="/raw/x"), status=200, headers=[TEXT], body=WHOLE)],
        inner=inner(),
    ),
    Case(
        "compression-app-error-is-a-plain-500",
        compression(brotli=False, zstd=False),
        [Step(accepting(b"gzip"), status=500, body=b"Internal Server Error\n")],
        inner=InnerApp(fail="after_start"),
    ),
]
