"""Direct calls of one middleware (or its peer) for instruction counts under callgrind.

``python benchmarks/count_direct.py VARIANT N`` makes N calls of VARIANT around a hello
world that declares its length, with nothing timed, so that the difference of two runs
under callgrind is the work of N calls (run from the repository root, ``PYTHONPATH=$PWD``;
the loops are ``bench_middleware``'s, timing nothing worth counting)::

    for n in 1000 3000; do
        valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python benchmarks/count_direct.py rid $n
    done
    # (total of 3000 - total of 1000) / 2000 = instructions per call; subtract "bare"

VARIANT is one of the names of :func:`variants` (``w-`` ones are WSGI). The request comes
from 127.0.0.1 with Host, an allowed Origin, ``Accept-Encoding: gzip`` and
``X-Forwarded-For``/``-Proto``; HTTPSRedirect's variants get an https request, which passes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.bench_middleware import _run_asgi, wsgi_batch
from bridge import (
    CORS,
    Compression,
    HTTPSRedirect,
    ProxyHeaders,
    RequestId,
    SecurityHeaders,
    TrustedHost,
)
from bridge.testing import Request

REQUEST = Request(
    headers=[
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"origin", b"https://site.example"),
        (b"accept-encoding", b"gzip"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"),
    ],
    client=("127.0.0.1", 5000),
    server=("127.0.0.1", 8000),
)
SITE = ["https://site.example"]
_WARM_UP = 300


async def hello(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hi"})


def whello(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"hi"]


def variants() -> dict[str, Callable[[], Any]]:
    """Each variant's app, made on demand (the peers are imported only when used)."""

    def peer(module: str, name: str, *args: Any, **options: Any) -> Callable[[], Any]:
        def make() -> Any:
            return getattr(__import__(module, fromlist=[name]), name)(*args, **options)

        return make

    return {
        "bare": lambda: hello,
        "cors": lambda: CORS(hello, allow_origins=SITE),
        "cors-peer": peer("starlette.middleware.cors", "CORSMiddleware", hello, allow_origins=SITE),
        "rid": lambda: RequestId(hello),
        "rid-peer": peer("asgi_correlation_id", "CorrelationIdMiddleware", hello),
        "comp": lambda: Compression(hello),
        "comp-peer": peer("starlette.middleware.gzip", "GZipMiddleware", hello),
        "th": lambda: TrustedHost(hello, allowed_hosts=["127.0.0.1"]),
        "th-peer": peer(
            "starlette.middleware.trustedhost",
            "TrustedHostMiddleware",
            hello,
            allowed_hosts=["127.0.0.1"],
        ),
        "https": lambda: HTTPSRedirect(hello),
        "https-peer": peer("starlette.middleware.httpsredirect", "HTTPSRedirectMiddleware", hello),
        "ph": lambda: ProxyHeaders(hello),
        "ph-peer": peer(
            "uvicorn.middleware.proxy_headers",
            "ProxyHeadersMiddleware",
            hello,
            trusted_hosts="127.0.0.1",
        ),
        "sec": lambda: SecurityHeaders(hello),
        "w-bare": lambda: whello,
        "w-ph": lambda: ProxyHeaders(whello),
        "w-ph-peer": peer("werkzeug.middleware.proxy_fix", "ProxyFix", whello, x_for=1, x_proto=1),
        "w-rid": lambda: RequestId(whello),
        "w-cors": lambda: CORS(whello, allow_origins=SITE),
    }


def main() -> None:
    name, count = sys.argv[1], int(sys.argv[2])
    app = variants()[name]()
    if name.startswith("w-"):
        run = functools.partial(wsgi_batch, app, request=REQUEST)
    else:
        request = dataclasses.replace(
            REQUEST, scheme="https" if name.startswith("https") else "http"
        )
        loop = asyncio.new_event_loop()
        run = functools.partial(_run_asgi, loop, app, request=request)
    run(_WARM_UP)
    gc.freeze()  # the warm-up's objects: no full collection lands in one run and not the other
    run(count)


if __name__ == "__main__":
    main()
