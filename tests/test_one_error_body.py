"""The adapters and the middleware core answer the same error with the same bytes.

Each component that answers a request by itself (WsgiToAsgi, AsgiToWsgi, the
middleware core's WSGI and ASGI drivers) renders through bridge._http.errors, so
the status, Content-Type, Content-Length and body are equal for equal errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import AsgiToWsgi, WsgiToAsgi
from bridge.middleware import CustomHeaders
from bridge.testing import InnerApp, Request, Result, acall_asgi, call_wsgi

pytestmark = pytest.mark.anyio

RAISES = InnerApp(fail="before_start")


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="bridge")


@pytest.fixture
def asgi_to_wsgi() -> Iterator[list[AsgiToWsgi]]:
    made: list[AsgiToWsgi] = []
    yield made
    for adapter in made:
        adapter.close()


def essentials(result: Result) -> tuple[int, bytes | None, bytes | None, bytes]:
    return (
        result.status,
        result.header(b"content-type"),
        result.header(b"content-length"),
        result.body,
    )


def middleware(app: Any) -> CustomHeaders:
    # reads the request headers (a malformed head is its 400) and holds the response
    # (an app failing before it is its 500); it adds nothing to its own errors
    return CustomHeaders(app, set_request={"x-seen": "1"}, set_response={"x-tag": "1"})


async def test_a_500_is_the_same_from_every_component(
    asgi_to_wsgi: list[AsgiToWsgi],
) -> None:
    adapter = AsgiToWsgi(RAISES.asgi(), lifespan="off")
    asgi_to_wsgi.append(adapter)
    results = {
        "WsgiToAsgi": await acall_asgi(WsgiToAsgi(RAISES.wsgi())),
        "AsgiToWsgi": call_wsgi(adapter),
        "middleware under WSGI": call_wsgi(middleware(RAISES.wsgi())),
        "middleware under ASGI": await acall_asgi(middleware(RAISES.asgi())),
    }
    expected = (500, b"text/plain; charset=utf-8", b"22", b"Internal Server Error\n")
    assert {name: essentials(r) for name, r in results.items()} == dict.fromkeys(results, expected)


async def test_a_malformed_head_is_the_same_400_from_the_adapter_and_the_middleware() -> None:
    request = Request(headers=[(b"host", b"testserver"), (b"content-length", b"ten")])
    expected = b"Bad Request: invalid Content-Length: b'ten'\n"
    under_adapter = await acall_asgi(WsgiToAsgi(InnerApp().wsgi()), request)
    under_middleware = await acall_asgi(middleware(InnerApp().asgi()), request)
    assert essentials(under_adapter) == essentials(under_middleware)
    assert (under_adapter.status, under_adapter.body) == (400, expected)


def test_asgi_to_wsgi_answers_a_malformed_content_length_like_the_middleware(
    asgi_to_wsgi: list[AsgiToWsgi],
) -> None:
    adapter = AsgiToWsgi(InnerApp().asgi(), lifespan="off")
    asgi_to_wsgi.append(adapter)
    environ_length = {"CONTENT_LENGTH": "ten"}
    result = call_wsgi(_with_environ(adapter, environ_length))
    assert essentials(result) == (
        400,
        b"text/plain; charset=utf-8",
        b"44",
        b"Bad Request: invalid Content-Length: b'ten'\n",
    )


async def test_too_many_header_lines_is_a_431_named_as_such() -> None:
    lines = [(b"x-line", b"%d" % n) for n in range(101)]
    result = await acall_asgi(WsgiToAsgi(InnerApp().wsgi()), Request(headers=lines))
    assert result.status == 431
    assert result.body == b"Request Header Fields Too Large: more than 100 request header lines\n"


def _with_environ(app: Any, extra: dict[str, str]) -> Any:
    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        return app({**environ, **extra}, start_response)

    return wrapped
