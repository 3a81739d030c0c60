"""A FastAPI (ASGI) app under gunicorn (WSGI) through ``bridge.AsgiToWsgi``.

Run it from the repository root (``pip install -e '.[examples]'`` first)::

    python examples/fastapi_under_gunicorn.py               # http://127.0.0.1:8000
    python examples/fastapi_under_gunicorn.py --port 9000

which is the same as the usual command line::

    gunicorn -k gthread --threads 8 --access-logfile - \\
        --chdir examples fastapi_under_gunicorn:application

Any WSGI server works the same way: ``waitress-serve --listen 127.0.0.1:8000
--call`` needs a factory, so use ``waitress-serve fastapi_under_gunicorn:application``
from ``examples/``; uWSGI takes ``--wsgi-file examples/fastapi_under_gunicorn.py
--callable application`` and mod_wsgi ``WSGIScriptAlias / .../fastapi_under_gunicorn.py``
with ``application`` as the callable's name.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bridge import AsgiToWsgi

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Runs once per worker process, before its first request (AsgiToWsgi drives lifespan).
    state["ready"] = True
    yield
    state.clear()


api = FastAPI(lifespan=lifespan)


@api.get("/")
async def index(request: Request) -> dict[str, Any]:
    return {"hello": "from FastAPI", "server": request.scope.get("server"), **state}


@api.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    received = 0
    async for chunk in request.stream():  # streamed from wsgi.input, any size
        received += len(chunk)
    return {"received": received}


@api.get("/stream")
async def stream() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(1, 6):
            yield f"line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


#: The WSGI application: ``gunicorn fastapi_under_gunicorn:application``.
application = AsgiToWsgi(api)


def serve(host: str, port: int) -> None:
    """Run gunicorn in this process, as its command line would."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "worker_class": "gthread",
                "workers": 1,
                "threads": 8,
                "accesslog": "-",
            }
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> AsgiToWsgi:
            return application

    Gunicorn().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}"
    print(f"FastAPI through AsgiToWsgi under gunicorn on {url}: try curl {url}/", flush=True)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
