"""Real FastAPI, Starlette and Django (ASGIHandler) apps through AsgiToWsgi, in-process.

Requests go through werkzeug's test client, with ``wsgiref.validate.validator``
wrapped around every adapter. FastAPI and Starlette run on the asyncio and the
trio background loop; Django's ASGI handler uses asyncio directly
(``asyncio.create_task``), so it runs on asyncio only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from wsgiref.util import FileWrapper
from wsgiref.validate import validator

import pytest
from fastapi import Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client, TestResponse

from bridge import AsgiToWsgi
from tests.apps import asgi_frameworks, django_asgi_app
from tests.apps.asgi_frameworks import fastapi_app, gate, starlette_app

from .asgi_to_wsgi_helpers import LOGGER, errors, refusals

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

Serve = Callable[..., Client]
MiB = 1024 * 1024


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def adapters() -> Iterator[list[AsgiToWsgi]]:
    made: list[AsgiToWsgi] = []
    yield made
    for adapter in made:
        adapter.close()


@pytest.fixture
def serve(adapters: list[AsgiToWsgi], backend: str) -> Serve:
    """``serve(asgi_app, **options)``: a werkzeug client for a validated AsgiToWsgi."""

    def _serve(app: Any, **options: Any) -> Client:
        options.setdefault("backend", backend)
        adapter = AsgiToWsgi(app, **options)
        adapters.append(adapter)
        return Client(validator(cast("WSGIApplication", adapter)))

    return _serve


def fetch(client: Client, path: str, method: str = "GET", **kwargs: Any) -> TestResponse:
    """One request, read in full; the WSGI iterable is closed before this returns."""
    return client.open(path, method=method, buffered=True, **kwargs)


# -- FastAPI ------------------------------------------------------------------------


def test_fastapi_path_query_and_root_path(serve: Serve) -> None:
    client = serve(fastapi_app)
    response = fetch(client, "/items/3?q=x%20y", base_url="http://example.org/api/")
    assert response.status_code == 200
    assert response.json == {
        "item_id": 3,
        "q": "x y",
        "root_path": "/api",
        "url": "http://example.org/api/items/3?q=x%20y",
        "url_for": "http://example.org/api/items/7",
    }


def test_fastapi_json_body_validation(serve: Serve) -> None:
    client = serve(fastapi_app)
    created = fetch(client, "/items", "POST", json={"name": "pen", "price": 1.5})
    assert (created.status_code, created.json) == (201, {"name": "pen", "price": 1.5})
    invalid = fetch(client, "/items", "POST", json={"name": "pen"})
    assert invalid.status_code == 422
    assert invalid.json is not None
    assert invalid.json["detail"][0]["loc"] == ["body", "price"]


def test_fastapi_http_exception_and_cookies(serve: Serve) -> None:
    client = serve(fastapi_app)
    missing = fetch(client, "/missing")
    assert (missing.status_code, missing.json) == (404, {"detail": "no such thing"})
    cookies = fetch(client, "/cookies")
    assert [c.split(";")[0] for c in cookies.headers.getlist("Set-Cookie")] == ["a=1", "b=2"]


def test_fastapi_lifespan_state_reaches_every_request(serve: Serve, backend: str) -> None:
    before = asgi_frameworks.startups("fastapi")
    client = serve(fastapi_app)
    answers = [fetch(client, "/pid").json for _ in range(3)]
    assert asgi_frameworks.startups("fastapi") == before + 1
    for answer in answers:
        assert answer is not None
        assert (answer["started_by"], answer["backend"]) == (os.getpid(), backend)


def test_fastapi_echo_of_a_large_body(serve: Serve) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    response = fetch(serve(fastapi_app), "/echo", "POST", data=data)
    assert response.status_code == 200
    assert hashlib.sha256(response.data).digest() == hashlib.sha256(data).digest()


def test_fastapi_upload_is_streamed_to_the_endpoint(serve: Serve) -> None:
    data = os.urandom(1024 * 1024)
    response = fetch(serve(fastapi_app, chunk_size=16 * 1024), "/upload", "POST", data=data)
    assert response.json == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_fastapi_error_is_500_and_one_log_line(
    adapters: list[AsgiToWsgi], serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, LOGGER)
    response = fetch(serve(fastapi_app), "/boom")
    assert response.status_code == 500
    adapters[0].close()  # waits for the app task, which re-raises after its 500
    (line,) = errors(caplog)
    assert "RuntimeError: boom from a FastAPI endpoint" in line


def test_fastapi_upload_cut_short_is_one_log_line(
    adapters: list[AsgiToWsgi], serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The client went away mid-upload: Starlette raises ClientDisconnect, answered by
    its error middleware; the adapter's line about the short body is the only one."""
    client = serve(fastapi_app)
    overrides = {"CONTENT_LENGTH": str(MiB)}  # more than the 100 kB that arrive
    response = fetch(client, "/upload", "POST", data=b"x" * 100_000, environ_overrides=overrides)
    assert response.status_code in (400, 500)
    adapters[0].close()  # waits for the app task
    (line,) = refusals(caplog)
    assert "ended" in line
    assert "early" in line


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("stream", [b"first\n", b"rest 0\n", b"rest 1\n", b"rest 2\n"], id="streaming"),
        pytest.param(
            "sse",
            [b"event: tick\ndata: first\nid: 1\n\n"]
            + [f"event: tick\ndata: event {n}\nid: {n}\n\n".encode() for n in (2, 3)],
            id="server-sent-events",
        ),
    ],
)
def test_fastapi_streams_progressively(
    serve: Serve, request: pytest.FixtureRequest, path: str, expected: list[bytes]
) -> None:
    name = f"{request.node.name}-gate"
    response = serve(fastapi_app).get(f"/{path}?gate={name}", buffered=False)
    try:
        chunks = iter(response.response)
        first = next(chunks)  # arrives while the endpoint waits for the gate
        assert not gate(name).is_set()
        gate(name).set()
        assert [first, *chunks] == expected
    finally:
        response.close()


def test_fastapi_stream_closed_early_logs_one_info_line(
    adapters: list[AsgiToWsgi], serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The client leaves a StreamingResponse: Starlette turns the adapter's
    ClientDisconnected (an OSError) into its own ClientDisconnect, which is no error."""
    caplog.set_level(logging.INFO, LOGGER)
    response = serve(fastapi_app, disconnect_grace=0.05).get(
        f"/download?size={100 * MiB}", buffered=False
    )
    assert len(next(iter(response.response))) == 64 * 1024
    response.close()
    adapters[0].close()  # waits for the app task to end
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 1, lines
    assert lines[0][0] == "INFO"
    assert "closed the response early" in lines[0][1]


def test_fastapi_background_task_runs_after_the_response(
    serve: Serve, request: pytest.FixtureRequest
) -> None:
    name = f"{request.node.name}-gate"
    response = fetch(serve(fastapi_app), f"/background?name={name}")
    assert response.json == {"queued": name}
    assert not gate(f"{name}-ran").is_set()
    gate(name).set()
    assert gate(f"{name}-ran").wait(10)


async def add_header(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["x-middleware"] = "seen"
    return response


def test_fastapi_behind_base_http_middleware(serve: Serve, request: pytest.FixtureRequest) -> None:
    """BaseHTTPMiddleware (``@app.middleware("http")``) runs the app in a task group
    and relays its messages through memory streams; streaming stays progressive."""
    client = serve(BaseHTTPMiddleware(fastapi_app, dispatch=add_header))
    echoed = fetch(client, "/echo", "POST", data=b"z" * 200_000)
    assert (echoed.headers["x-middleware"], echoed.data) == ("seen", b"z" * 200_000)
    name = f"{request.node.name}-gate"
    response = client.get(f"/stream?gate={name}", buffered=False)
    try:
        chunks = cast("Iterator[bytes]", iter(response.response))
        assert next(chunks) == b"first\n"
        gate(name).set()
        assert b"".join(chunks) == b"rest 0\nrest 1\nrest 2\n"
        assert response.headers["x-middleware"] == "seen"
    finally:
        response.close()


# -- Starlette ----------------------------------------------------------------------


def test_starlette_lifespan_state_and_mount(serve: Serve) -> None:
    client = serve(starlette_app)
    home = fetch(client, "/")
    assert home.data == b"hello from lifespan at /"
    user = fetch(client, "/users/bob", base_url="http://example.org/site/")
    assert user.json == {
        "name": "bob",
        "path": "/site/users/bob",
        "root_path": "/site/users",
        "url_for": "http://example.org/site/users/other",
    }


def test_starlette_gzip_middleware(serve: Serve) -> None:
    response = fetch(serve(starlette_app), "/big", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers.getlist("Vary") == ["Accept-Encoding"]
    assert gzip.decompress(response.data) == b"compress me " * 2000


@pytest.mark.parametrize("file_wrapper", [True, False], ids=["pathsend", "streamed"])
def test_starlette_file_response(serve: Serve, tmp_path: Path, file_wrapper: bool) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(os.urandom(300_000))
    overrides = {"wsgi.file_wrapper": FileWrapper} if file_wrapper else {}
    response = fetch(serve(starlette_app), f"/file?path={target}", environ_overrides=overrides)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "300000"
    assert response.data == target.read_bytes()


def test_starlette_is_disconnected_after_the_body(serve: Serve) -> None:
    response = fetch(serve(starlette_app), "/check", "POST", data=b"x" * 200_000)
    assert response.data == b"200000 False"


def test_starlette_unknown_path_is_404(serve: Serve) -> None:
    assert fetch(serve(starlette_app), "/nowhere").status_code == 404


# -- Django (asyncio only) ----------------------------------------------------------


@pytest.fixture
def django_client(adapters: list[AsgiToWsgi]) -> Client:
    adapter = AsgiToWsgi(django_asgi_app.asgi)
    adapters.append(adapter)
    return Client(validator(cast("WSGIApplication", adapter)))


def test_django_hello_and_404(django_client: Client) -> None:
    assert fetch(django_client, "/").data == b"Hello from Django ASGI"
    assert fetch(django_client, "/nowhere").status_code == 404


def test_django_script_name_and_headers(django_client: Client) -> None:
    response = fetch(
        django_client,
        "/info?a=1&b=%C3%A9",
        base_url="http://example.org/mnt/",
        headers={"X-User": "ann"},
    )
    assert response.json is not None
    data = {k: v for k, v in response.json.items() if k != "pid"}
    assert data == {
        "path": "/mnt/info",
        "path_info": "/info",
        "script_name": "/mnt",
        "query": {"a": "1", "b": "é"},
        "host": "example.org",
        "x_user": "ann",
    }


def test_django_echo_async_view_and_streaming(django_client: Client) -> None:
    data = os.urandom(2 * 1024 * 1024)
    echoed = fetch(django_client, "/echo", "POST", data=data)
    assert echoed.data == data
    assert fetch(django_client, "/async", "PUT").data == b"async PUT /async"
    streamed = fetch(django_client, "/stream")
    assert streamed.data == b"".join(f"line {n}\n".encode() for n in range(10))


def test_django_without_lifespan_support_falls_back_under_auto(
    django_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    assert fetch(django_client, "/").status_code == 200
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "running without lifespan" in line


def test_django_with_lifespan_on_answers_500(
    adapters: list[AsgiToWsgi], caplog: pytest.LogCaptureFixture
) -> None:
    adapter = AsgiToWsgi(django_asgi_app.asgi, lifespan="on")
    adapters.append(adapter)
    client = Client(validator(cast("WSGIApplication", adapter)))
    assert [fetch(client, "/").status_code for _ in range(2)] == [500, 500]
    assert "Django can only handle ASGI/HTTP connections" in errors(caplog)[0]


# -- all three under one werkzeug dispatcher ------------------------------------------


def not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here"]


def test_frameworks_mounted_side_by_side(adapters: list[AsgiToWsgi]) -> None:
    mounts = {
        "/fastapi": AsgiToWsgi(fastapi_app),
        "/starlette": AsgiToWsgi(starlette_app),
        "/django": AsgiToWsgi(django_asgi_app.asgi),
    }
    adapters.extend(mounts.values())
    site = DispatcherMiddleware(
        cast("WSGIApplication", not_found),
        {prefix: validator(cast("WSGIApplication", app)) for prefix, app in mounts.items()},
    )
    client = Client(site)
    fastapi_answer = fetch(client, "/fastapi/items/1")
    assert fastapi_answer.json is not None
    assert fastapi_answer.json["url"] == "http://localhost/fastapi/items/1"
    assert fetch(client, "/starlette/").data == b"hello from lifespan at /starlette/"
    django_answer = fetch(client, "/django/info")
    assert django_answer.json is not None
    assert django_answer.json["script_name"] == "/django"
    assert json.loads(fetch(client, "/fastapi/pid").data)["startups"] >= 1
    assert fetch(client, "/elsewhere").status_code == 404
