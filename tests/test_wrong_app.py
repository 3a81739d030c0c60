"""An adapter given the wrong kind of app refuses it at construction, naming the adapter to use."""

from __future__ import annotations

from typing import Any

import django.core.handlers.asgi  # type: ignore[import-untyped]
import django.core.handlers.wsgi  # type: ignore[import-untyped]
import fastapi
import flask
import pytest
import starlette.applications

from bridge import AsgiToWsgi, ProxyHeaders, RateLimit, WsgiToAsgi
from tests.apps import asgi_apps, django_settings, wsgi_apps


def _flask() -> flask.Flask:
    return flask.Flask("wrong_app")


@pytest.mark.parametrize(
    "make_app",
    [
        pytest.param(fastapi.FastAPI, id="fastapi"),
        pytest.param(starlette.applications.Starlette, id="starlette"),
        pytest.param(lambda: asgi_apps.hello, id="async-function"),
        pytest.param(lambda: ProxyHeaders(asgi_apps.hello), id="asgi-middleware"),
    ],
)
def test_wsgi_to_asgi_refuses_an_asgi_app(make_app: Any) -> None:
    with pytest.raises(TypeError, match=r"is an ASGI application: .*bridge\.AsgiToWsgi"):
        WsgiToAsgi(make_app())


def test_wsgi_to_asgi_refuses_a_class() -> None:
    with pytest.raises(TypeError, match=r"got the class Flask: pass an instance of it"):
        WsgiToAsgi(flask.Flask)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make_app",
    [
        pytest.param(_flask, id="flask"),
        pytest.param(lambda: _flask().wsgi_app, id="flask-wsgi_app"),
        pytest.param(lambda: flask.Flask, id="flask-class"),
        pytest.param(lambda: wsgi_apps.hello, id="function"),
        pytest.param(lambda: RateLimit(wsgi_apps.hello, "5/second"), id="wsgi-middleware"),
    ],
)
def test_asgi_to_wsgi_refuses_a_wsgi_app(make_app: Any) -> None:
    with pytest.raises(TypeError, match=r"is a WSGI application .*bridge\.WsgiToAsgi"):
        AsgiToWsgi(make_app(), lifespan="off")


def test_django_handlers_go_to_the_right_adapter() -> None:
    django_settings.configure()
    with pytest.raises(TypeError, match=r"bridge\.WsgiToAsgi"):
        AsgiToWsgi(django.core.handlers.wsgi.WSGIHandler(), lifespan="off")
    with pytest.raises(TypeError, match=r"bridge\.AsgiToWsgi"):
        WsgiToAsgi(django.core.handlers.asgi.ASGIHandler())


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(wsgi_apps.hello, id="function"),
        pytest.param(ProxyHeaders(wsgi_apps.hello), id="wsgi-middleware"),
        pytest.param(lambda *args: wsgi_apps.hello(*args), id="star-args"),
    ],
)
def test_wsgi_to_asgi_accepts_wsgi_apps(app: Any) -> None:
    assert WsgiToAsgi(app).app is app


def test_asgi_to_wsgi_accepts_asgi_apps() -> None:
    for app in (fastapi.FastAPI(), asgi_apps.hello, ProxyHeaders(asgi_apps.hello)):
        with AsgiToWsgi(app, lifespan="off") as adapter:
            assert adapter.app is app


def test_stack_puts_proxy_headers_first() -> None:
    from bridge import SecurityHeaders
    from bridge.middleware import stack

    ordered = stack(wsgi_apps.hello, SecurityHeaders, (ProxyHeaders, {"trusted": ["10.0.0.0/8"]}))
    assert isinstance(ordered, ProxyHeaders)
    assert isinstance(ordered.app, SecurityHeaders)
