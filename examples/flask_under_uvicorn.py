"""A Flask (WSGI) app under uvicorn (ASGI), behind bridge's whole middleware stack.

Run it from the repository root (``pip install -e '.[examples]'`` first)::

    python examples/flask_under_uvicorn.py              # http://127.0.0.1:8000
    python examples/flask_under_uvicorn.py --port 9000

It prints what to try; uvicorn logs each request it serves.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import uvicorn
from flask import Flask, Response, request

from bridge import (
    ConcurrencyLimit,
    CustomHeaders,
    ProxyHeaders,
    RateLimit,
    RequestBuffering,
    ResponseBuffering,
    SecurityHeaders,
    WsgiToAsgi,
)
from bridge.middleware import stack

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> dict[str, Any]:
    # After ProxyHeaders, remote_addr and scheme are the client's, not the proxy's.
    return {"hello": "from Flask", "client": request.remote_addr, "scheme": request.scheme}


@flask_app.post("/echo")
def echo() -> Response:
    # RequestBuffering has read the whole body before this thread was taken.
    return Response(request.get_data(), mimetype="application/octet-stream")


@flask_app.get("/count")
def count() -> Response:
    def numbers() -> Iterator[str]:
        yield from (f"{number}\n" for number in range(1, 11))

    return Response(numbers(), mimetype="text/plain")


#: The ASGI application (``uvicorn flask_under_uvicorn:app --app-dir examples`` works too).
#: The first layer sees the request first.
app = stack(
    WsgiToAsgi(flask_app),
    # the client behind a trusted proxy (here: a proxy on this machine)
    (ProxyHeaders, {"trusted": ["127.0.0.1"]}),
    # per client address: 10 requests a second, 20 more in a burst; 4 at once at most
    (RateLimit, {"limit": "10/second burst 20"}),
    (ConcurrencyLimit, {"limit": 4}),
    # bodies up to 1 MiB, read before a thread runs Flask; 408 for a stalled upload
    (RequestBuffering, {"max_body_size": "1m", "body_timeout": 30}),
    (SecurityHeaders, {"preset": "strict"}),
    (CustomHeaders, {"set_response": {"x-served-by": "bridge"}}),
    # the app's response is sent with a Content-Length once it is complete
    ResponseBuffering,
)

NEXT_STEPS = """\
Serving a Flask app through WsgiToAsgi, under uvicorn, on {url}
Middleware: ProxyHeaders, RateLimit, ConcurrencyLimit, RequestBuffering, SecurityHeaders,
CustomHeaders, ResponseBuffering. Try, in another terminal:

  curl -i {url}/                                   # security and RateLimit headers
  curl -H 'X-Forwarded-For: 203.0.113.7' {url}/    # the client as the proxy says
  curl --data-binary @README.md {url}/echo         # a body, read before Flask runs
  curl {url}/count                                 # a streamed response, buffered
  for i in $(seq 40); do curl -s -o /dev/null -w '%{{http_code}} ' {url}/; done   # 429s

Each request shows a log line below. Stop with Ctrl+C.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    print(NEXT_STEPS.format(url=f"http://{args.host}:{args.port}"), flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        server_header=False,
        proxy_headers=False,  # ProxyHeaders reads them, once
    )


if __name__ == "__main__":
    main()
