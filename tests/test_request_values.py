"""``bridge.request_values`` reads the same per-request values from a WSGI environ, an
ASGI scope, and Flask, Starlette and Django requests under both interfaces."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import flask
import pytest
import starlette.applications
import starlette.requests
import starlette.responses
import starlette.routing
from django.core.handlers.asgi import ASGIRequest  # type: ignore[import-untyped]
from django.core.handlers.wsgi import WSGIRequest  # type: ignore[import-untyped]

import bridge
from bridge import AsgiToWsgi, ProxyHeaders, RequestId, SecurityHeaders, WsgiToAsgi, request_values
from bridge.testing import Request, Result, call_asgi, call_wsgi
from tests.apps import django_settings

CSP = "script-src 'nonce-{nonce}'"
REQUEST = Request(headers=((b"host", b"testserver"), (b"x-forwarded-for", b"203.0.113.9")))


def _stack(app: Any) -> Any:
    return ProxyHeaders(RequestId(SecurityHeaders(app, csp=CSP)))


def _report(request: Any) -> bytes:
    values = request_values(request)
    original = values.original_request
    report = {
        "nonce": values.csp_nonce,
        "request_id": values.request_id,
        "original_client": None if original is None else original["client"][0],
        "keys": sorted(values),
    }
    return json.dumps(report).encode()


def _flask_app() -> flask.Flask:
    app = flask.Flask("request_values")

    @app.route("/")
    def index() -> flask.Response:
        return flask.Response(_report(flask.request), content_type="application/json")

    return app


def _starlette_app() -> starlette.applications.Starlette:
    async def index(request: starlette.requests.Request) -> starlette.responses.Response:
        return starlette.responses.Response(_report(request), media_type="application/json")

    return starlette.applications.Starlette(routes=[starlette.routing.Route("/", index)])


def _django_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    django_settings.configure()
    body = _report(WSGIRequest(environ))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def _django_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    django_settings.configure()
    body = _report(ASGIRequest(scope, io.BytesIO()))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _raw_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = _report(environ)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def _raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = _report(scope)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _wsgi(app: Any) -> Callable[[], Result]:
    return lambda: call_wsgi(_stack(app), REQUEST)


def _asgi(app: Any) -> Callable[[], Result]:
    return lambda: call_asgi(_stack(app), REQUEST)


@pytest.mark.parametrize(
    "respond",
    [
        pytest.param(_wsgi(_raw_wsgi), id="environ"),
        pytest.param(_asgi(_raw_asgi), id="scope"),
        pytest.param(_wsgi(_flask_app()), id="flask-wsgi"),
        pytest.param(_asgi(WsgiToAsgi(_flask_app())), id="flask-under-WsgiToAsgi"),
        pytest.param(_asgi(_starlette_app()), id="starlette"),
        pytest.param(
            _wsgi(AsgiToWsgi(_starlette_app(), lifespan="off")), id="starlette-under-AsgiToWsgi"
        ),
        pytest.param(_wsgi(_django_wsgi), id="django-wsgi"),
        pytest.param(_asgi(_django_asgi), id="django-asgi"),
    ],
)
def test_every_value_reads_the_same_everywhere(respond: Callable[[], Result]) -> None:
    result = respond()
    assert result.status == 200, result.body
    report = json.loads(result.body)
    csp = result.header(b"content-security-policy")
    assert report["nonce"], report
    assert csp == f"script-src 'nonce-{report['nonce']}'".encode()
    assert result.header(b"x-request-id") == report["request_id"].encode()
    assert report["original_client"] == "127.0.0.1"
    assert report["keys"] == ["bridge.csp_nonce", "bridge.proxy.original", "bridge.request_id"]


def test_a_request_no_middleware_touched_has_no_values() -> None:
    values = request_values({"REQUEST_METHOD": "GET"})
    assert dict(values) == {}
    assert (values.csp_nonce, values.request_id, values.original_request) == (None, None, None)


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a WSGI environ, an ASGI scope"):
        request_values("GET /")


def test_the_key_is_the_one_the_drivers_write() -> None:
    from bridge.middleware._core.heads import VALUES_KEY

    assert bridge.values.VALUES_KEY == VALUES_KEY


def test_asgi_to_wsgi_carries_only_bridge_keys_into_the_scope() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def tagging(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["bridge.example"] = "set on the WSGI side"
        environ["werkzeug.request"] = "not bridge's"
        return adapter(environ, start_response)

    with AsgiToWsgi(app, lifespan="off") as adapter:
        assert call_wsgi(tagging, Request()).status == 204
    assert seen["bridge.example"] == "set on the WSGI side"
    assert "werkzeug.request" not in seen
    assert request_values(seen)["bridge.example"] == "set on the WSGI side"
