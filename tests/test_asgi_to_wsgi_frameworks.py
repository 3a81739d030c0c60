"""Real FastAPI, Starlette and Django apps through AsgiToWsgi, in-process.

werkzeug's test client drives ``wsgiref.validate.validator(AsgiToWsgi(app))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast
from wsgiref.validate import validator

import pytest
from werkzeug.test import Client, TestResponse

from bridge import AsgiToWsgi
from tests.apps import django_app, fastapi_app, starlette_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def client_for(adapter: AsgiToWsgi) -> Client:
    return Client(validator(cast("WSGIApplication", adapter)))


def fetch(client: Client, path: str, **kwargs: Any) -> TestResponse:
    response = client.open(path, buffered=True, **kwargs)
    response.close()
    return response


@pytest.fixture
def fastapi_client(backend: str) -> Iterator[Client]:
    with AsgiToWsgi(fastapi_app.app, backend=backend) as adapter:
        yield client_for(adapter)


@pytest.fixture
def starlette_client(backend: str) -> Iterator[Client]:
    with AsgiToWsgi(starlette_app.app, backend=backend) as adapter:
        yield client_for(adapter)


def test_fastapi_json_route(fastapi_client: Client) -> None:
    response = fetch(fastapi_client, "/items/42?q=x")
    assert response.status_code == 200
    assert response.json == {"item_id": 42, "q": "x"}


def test_fastapi_validation_error_is_422(fastapi_client: Client) -> None:
    assert fetch(fastapi_client, "/items/not-a-number").status_code == 422


def test_fastapi_post_echo(fastapi_client: Client) -> None:
    response = fetch(fastapi_client, "/echo", method="POST", data="héllo" * 1000)
    assert response.get_data(as_text=True) == "héllo" * 1000


def test_fastapi_lifespan_state(fastapi_client: Client) -> None:
    response = fetch(fastapi_client, "/state")
    assert response.json is not None
    assert response.json["started_by"] == response.json["pid"]


def test_fastapi_streaming_response(fastapi_client: Client) -> None:
    response = fetch(fastapi_client, "/download?size=3145728")
    assert response.data == b"d" * 3 * 1024 * 1024


def test_fastapi_upload_stream(fastapi_client: Client) -> None:
    response = fetch(fastapi_client, "/upload", method="POST", data=b"u" * 1_000_000)
    assert response.json == {"received": 1_000_000}


def test_fastapi_not_found(fastapi_client: Client) -> None:
    assert fetch(fastapi_client, "/nope").status_code == 404


def test_starlette_mount_root_path_and_query(starlette_client: Client) -> None:
    response = fetch(starlette_client, "/sub/info?x=1&y=%C3%A9")
    assert response.json == {
        "path": "/sub/info",
        "root_path": "/sub",
        "query": {"x": "1", "y": "é"},
    }


def test_starlette_under_script_name(backend: str) -> None:
    with AsgiToWsgi(starlette_app.app, backend=backend) as adapter:
        client = client_for(adapter)
        response = client.open("/sub/info", base_url="http://localhost/prefix", buffered=True)
        response.close()
    assert response.json is not None
    assert response.json["path"] == "/prefix/sub/info"
    assert response.json["root_path"] == "/prefix/sub"  # the Mount extends the root path


def test_starlette_json_body(starlette_client: Client) -> None:
    response = fetch(starlette_client, "/json", method="POST", json={"name": "ada", "x": [1]})
    assert response.json == {"name": "ada", "x": [1]}


def test_starlette_set_cookie_headers_survive(starlette_client: Client) -> None:
    response = fetch(starlette_client, "/cookies")
    cookies = response.headers.getlist("Set-Cookie")
    assert [cookie.split(";")[0] for cookie in cookies] == ["a=1", "b=2"]


@pytest.fixture
def django_client() -> Iterator[Client]:
    # Django's ASGI handler is asyncio-only (asgiref's sync_to_async).
    with AsgiToWsgi(django_app.asgi_app) as adapter:
        yield client_for(adapter)


def test_django_hello(django_client: Client) -> None:
    response = fetch(django_client, "/hello")
    assert (response.status_code, response.data) == (200, b"Hello from Django")


def test_django_echo(django_client: Client) -> None:
    response = fetch(django_client, "/echo", method="POST", data=b"\x00\xff" * 50_000)
    assert response.data == b"\x00\xff" * 50_000


def test_django_non_ascii_path_and_headers(django_client: Client) -> None:
    response = fetch(django_client, "/info/caf%C3%A9?a=b", headers={"X-Thing": "yes"})
    assert response.json == {
        "path": "/info/café",
        "script_name": "",
        "path_info": "/info/café",
        "method": "GET",
        "query": {"a": "b"},
        "header": "yes",
    }


def test_django_streaming(django_client: Client) -> None:
    response = fetch(django_client, "/stream")
    assert response.data == b"chunk 0\nchunk 1\nchunk 2\n"


def test_django_404(django_client: Client) -> None:
    assert fetch(django_client, "/missing").status_code == 404
