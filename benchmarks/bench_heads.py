"""Micro-timings of the request head a driver builds per request.

Times ``head_from_environ`` and ``head_from_scope`` for the request bench_middleware.py
sends (a PEP 3333 environ as a server gives it, and its ASGI scope), alone and followed
by a read of every field (a checkout whose heads read fields on demand pays for them
there), and the WSGI driver's conversion of response header lines. Each figure is the
minimum over many short repeats (steadier than a mean on a shared machine).

    PYTHONPATH=$PWD python benchmarks/bench_heads.py [--repeat 200] [--number 2000]
"""

from __future__ import annotations

import argparse
import io
import sys
import timeit
from collections.abc import Callable
from typing import Any

from benchmarks.bench_middleware import REQUEST

try:
    from bridge._http.translate import environ_from_scope
    from bridge.middleware._core.heads import head_from_environ, head_from_scope
except ImportError:  # a checkout from before the layered folders, measured for comparison
    from bridge._translate import environ_from_scope  # type: ignore[import-not-found,no-redef]
    from bridge.middleware._sourced import (  # type: ignore[import-not-found,no-redef]
        head_from_environ,
        head_from_scope,
    )

FIELDS = (
    "method",
    "scheme",
    "path",
    "root_path",
    "raw_path",
    "query_string",
    "client",
    "server",
    "http_version",
)

#: SecurityHeaders' seven lines (as bench_middleware configures it), as bytes.
ADDED = tuple(
    (name.encode("latin-1"), value.encode("latin-1"))
    for name, value in (
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("content-security-policy", "default-src 'self'"),
        ("permissions-policy", "geolocation=(), microphone=(), camera=()"),
    )
)


def read_all(head: Any) -> None:
    for name in FIELDS:
        getattr(head, name)


def cases() -> dict[str, Callable[[], Any]]:
    scope = REQUEST.scope()
    environ = environ_from_scope(scope, wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)
    del environ["asgi.scope"]
    return {
        "head_from_environ": lambda: head_from_environ(environ),
        "head_from_environ + every field": lambda: read_all(head_from_environ(environ)),
        "head_from_scope": lambda: head_from_scope(scope),
        "head_from_scope + every field": lambda: read_all(head_from_scope(scope)),
        "7 response lines to text": lambda: [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in ADDED
        ],
        "(empty call)": lambda: None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    for label, case in cases().items():
        best = min(timeit.repeat(case, number=args.number, repeat=args.repeat)) / args.number
        print(f"{label:34} {best * 1e6:6.3f} µs")


if __name__ == "__main__":
    main()
