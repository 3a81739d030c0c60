"""A Flask (WSGI) app served by uvicorn (ASGI) through ``bridge.WsgiToAsgi``.

Run it from the repository root::

    python examples/legacy_flask.py            # http://127.0.0.1:8000
    python examples/legacy_flask.py --port 9000

then try ``curl http://127.0.0.1:8000/`` or
``curl --data-binary @README.md http://127.0.0.1:8000/echo``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import uvicorn
from flask import Flask, Response, request

from bridge import WsgiToAsgi

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "Hello from Flask, served by uvicorn through bridge.WsgiToAsgi\n"


@flask_app.post("/echo")
def echo() -> Response:
    # The body streams in as it is read and back out as it is produced: any size
    # works in bounded memory.
    stream = request.stream

    def chunks() -> Iterator[bytes]:
        while chunk := stream.read(64 * 1024):
            yield chunk

    return Response(chunks(), mimetype="application/octet-stream")


@flask_app.get("/count")
def count() -> Response:
    def numbers() -> Iterator[str]:
        for number in range(1, 11):
            yield f"{number}\n"

    return Response(numbers(), mimetype="text/plain")


#: The ASGI application: ``uvicorn examples.legacy_flask:app`` works too.
app = WsgiToAsgi(flask_app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    url = f"http://127.0.0.1:{port}"
    print(f"Serving the Flask app through WsgiToAsgi on {url}: try curl {url}/count", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")  # a log line per request


if __name__ == "__main__":
    main()
