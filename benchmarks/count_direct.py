"""Direct calls of one middleware (or its peer) for instruction counts under callgrind.

``python benchmarks/count_direct.py VARIANT N`` makes N calls of VARIANT around a hello
world that declares its length, with nothing timed, so that the difference of two runs
under callgrind is the work of N calls (run from the repository root, ``PYTHONPATH=$PWD``)::

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
import io
import sys
from collections.abc import Callable
from typing import Any

from bridge import (
    CORS,
    Compression,
    HTTPSRedirect,
    ProxyHeaders,
    RequestId,
    SecurityHeaders,
    TrustedHost,
)

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"wrk"),
    (b"origin", b"https://site.example"),
    (b"accept-encoding", b"gzip"),
    (b"x-forwarded-for", b"203.0.113.9"),
    (b"x-forwarded-proto", b"https"),
]
SITE = ["https://site.example"]


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


def run_wsgi(app: Any, count: int) -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "5000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in HEADERS:
        environ["HTTP_" + name.decode().upper().replace("-", "_")] = value.decode()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    for _ in range(count):
        body = app(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def run_asgi(app: Any, count: int, scheme: str) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": scheme,
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": HEADERS,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def calls() -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    asyncio.run(calls())


def main() -> None:
    name, count = sys.argv[1], int(sys.argv[2])
    app = variants()[name]()
    if name.startswith("w-"):
        run_wsgi(app, count)
    else:
        run_asgi(app, count, "https" if name.startswith("https") else "http")


if __name__ == "__main__":
    main()
