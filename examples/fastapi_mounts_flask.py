"""A FastAPI app with a legacy Flask app mounted under /legacy, both rate limited.

Run it from the repository root (``pip install -e '.[examples]'`` first)::

    python examples/fastapi_mounts_flask.py             # http://127.0.0.1:8000
    python examples/fastapi_mounts_flask.py --port 9000

FastAPI answers /api/..., Flask answers everything under /legacy/ through
``bridge.WsgiToAsgi``; one ``RateLimit`` in front of both counts requests per client.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from flask import Flask, request, url_for

from bridge import RateLimit, WsgiToAsgi

# -- the legacy app, unchanged: it does not know it is mounted
legacy = Flask(__name__)


@legacy.get("/")
def legacy_index() -> dict[str, str]:
    # Mounted under /legacy, Flask sees SCRIPT_NAME=/legacy: its URLs include the prefix.
    return {"app": "flask", "path": request.path, "self": url_for("legacy_index")}


@legacy.post("/orders")
def legacy_orders() -> tuple[dict[str, int], int]:
    return {"received": len(request.get_data())}, 201


# -- the new app
api = FastAPI()


@api.get("/api/health")
async def health() -> dict[str, str]:
    return {"app": "fastapi", "status": "ok"}


# Requests under /legacy run the Flask app in worker threads, streaming both ways.
api.mount("/legacy", WsgiToAsgi(legacy))

#: The ASGI application: 5 requests a second per client address (10 more in a burst), for
#: the FastAPI routes and the Flask app alike; RateLimit headers on every response, 429 beyond.
app = RateLimit(api, "5/second burst 10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}"
    print(f"FastAPI on {url}/api/health, the mounted Flask app on {url}/legacy/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
