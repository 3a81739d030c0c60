"""The options language: one path / exempt / methods configuration, the same matches everywhere.

Every middleware that takes paths is given the same patterns (``PATTERNS``)
and, where it takes methods, the same methods (``METHODS``). A probe per
middleware turns "this request matched" into something visible in the
response (a header present or absent, a 413, a 503). Each probe runs
unmounted and mounted under ``/mnt`` (SCRIPT_NAME / root_path), and the
expected match of every request comes from one function, :func:`matches`,
so every middleware must agree with it -- and with each other -- under
WSGI, asyncio and trio.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from bridge import (
    CORS,
    Compression,
    CustomHeaders,
    HTTPSRedirect,
    RequestBuffering,
    RequestBufferingRule,
    SecurityHeaders,
    TrustedHost,
)
from bridge.ratelimit import ConcurrencyLimit, MemoryStore, RateLimit, Rule
from bridge.testing import FakeClock, Request

from . import Case, Step

PATTERNS: Sequence[Any] = ("/healthz", "=/exact", re.compile(r"/items/\d+$"))
METHODS = "post, PUT"  # a string, lowercase on purpose: normalized to {"POST", "PUT"}

# app-relative path -> whether PATTERNS match it
PATHS = {
    "/": False,
    "/healthz": True,
    "/healthz/": True,
    "/healthz/live": True,
    "/healthzx": False,
    "/exact": True,
    "/exact/sub": False,
    "/items/7": True,
    "/items/7/edit": False,
    "/other/healthz": False,
}
MOUNTS = ("", "/mnt")


def matches(path: str, method: str | None) -> bool:
    """The one expected answer: PATTERNS (and METHODS, when the option takes them)."""
    return PATHS[path] and (method is None or method in ("POST", "PUT"))


class FullStore(MemoryStore):
    """A concurrency store with no free slot: every limited request gets the 503."""

    def acquire(self, key: str, limit: int, token: str, now: float) -> bool:
        return False


Probe = Callable[[bool], dict[str, Any]]
Line = tuple[bytes, bytes]


def line_when(line: Line, *, matched: bool) -> Probe:
    """The response carries ``line`` exactly when the match is ``matched``."""
    return lambda hit: {"has_headers": [line]} if hit == matched else {"lacks_headers": [line[0]]}


def status_when(status: int) -> Probe:
    """A match is answered with ``status`` (the app does not run); anything else gets 200."""
    return lambda hit: {"status": status if hit else 200}


NOSNIFF = (b"x-content-type-options", b"nosniff")
HIT = (b"x-hit", b"1")
HIT_TEXT = ("x-hit", "1")
POLICY = (b"ratelimit-policy", b'"1000/minute";q=1000;w=60')
VARY_ORIGIN = (b"vary", b"Origin")
Build = Callable[[Any, FakeClock], Any]

# name -> (build(app, clock), probe, whether the option takes methods)
PROBES: dict[str, tuple[Build, Probe, bool]] = {
    "security-headers-exempt": (
        lambda app, clock: SecurityHeaders(app, exempt=PATTERNS, clock=clock),
        line_when(NOSNIFF, matched=False),
        False,
    ),
    "headers-exempt": (
        lambda app, clock: CustomHeaders(
            app, set_response=[HIT_TEXT], exempt=PATTERNS, clock=clock
        ),
        line_when(HIT, matched=False),
        False,
    ),
    "headers-paths": (
        lambda app, clock: CustomHeaders(app, set_response=[HIT_TEXT], paths=PATTERNS, clock=clock),
        line_when(HIT, matched=True),
        False,
    ),
    "cors-exempt": (
        lambda app, clock: CORS(app, allow_origins=["https://a.example"], exempt=PATTERNS),
        line_when(VARY_ORIGIN, matched=False),
        False,
    ),
    "trusted-host-exempt": (  # the test client's Host (testserver) is not allowed
        lambda app, clock: TrustedHost(app, allowed_hosts=["example.com"], exempt=PATTERNS),
        lambda hit: {"status": 200 if hit else 400},
        False,
    ),
    "https-redirect-exempt": (  # the test client asks over http
        lambda app, clock: HTTPSRedirect(app, exempt=PATTERNS),
        lambda hit: {"status": 200 if hit else 308},
        False,
    ),
    "compression-exempt": (  # no Accept-Encoding: only Vary tells whether it looked
        lambda app, clock: Compression(app, exempt=PATTERNS),
        line_when((b"vary", b"Accept-Encoding"), matched=False),
        False,
    ),
    "ratelimit-exempt": (
        lambda app, clock: RateLimit(app, "1000/minute", exempt=PATTERNS, clock=clock),
        line_when(POLICY, matched=False),
        False,
    ),
    "concurrency-exempt": (
        lambda app, clock: ConcurrencyLimit(
            app, 1, store=FullStore(), exempt=PATTERNS, clock=clock
        ),
        lambda hit: {"status": 200 if hit else 503},
        False,
    ),
    "ratelimit-rules": (
        lambda app, clock: RateLimit(
            app,
            None,
            rules=[Rule("1000/minute", path=p, methods=METHODS) for p in PATTERNS],
            clock=clock,
        ),
        line_when(POLICY, matched=True),
        True,
    ),
    "request-buffering-rules": (
        lambda app, clock: RequestBuffering(
            app,
            close_connection=False,
            rules=[RequestBufferingRule(p, methods=METHODS, max_body_size=0) for p in PATTERNS],
            clock=clock,
        ),
        status_when(413),
        True,
    ),
}


def _steps(probe: Probe, mount: str, takes_methods: bool) -> list[Step]:
    steps = []
    for path in PATHS:
        for method in ("GET", "POST", "PUT") if takes_methods else ("POST",):
            hit = matches(path, method if takes_methods else None)
            request = Request(method=method, path=mount + path, root_path=mount, body=b"x")
            steps.append(Step(request, **probe(hit)))
    return steps


CASES: list[Case] = [
    Case(f"options-{name}-{'mounted' if mount else 'unmounted'}", build, _steps(probe, mount, m))
    for name, (build, probe, m) in PROBES.items()
    for mount in MOUNTS
]
