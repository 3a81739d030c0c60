"""ProxyHeaders behaviour the conformance table cannot show: log lines, an ASGI
server without an address, and a real Django app trusting what reaches it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import tests.apps.django_settings  # noqa: F401 - configures Django for this process
from bridge import ProxyHeaders
from bridge.testing import InnerApp, Request, Result, call_asgi, call_wsgi

LOGGER = "bridge.middleware.proxy_headers"
UNTRUSTED = ("198.51.100.9", 1234)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def test_untrusted_peer_headers_are_removed_with_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(
        headers=[(b"host", b"h"), (b"x-forwarded-proto", b"https"), (b"x-real-ip", b"1.2.3.4")],
        client=UNTRUSTED,
    )
    result = call_wsgi(ProxyHeaders(InnerApp().wsgi()), request)
    assert result.seen is not None
    assert result.seen.head.headers == ((b"host", b"h"),)
    (record,) = _records(caplog)
    assert record.levelno == logging.INFO
    assert "198.51.100.9" in record.getMessage()
    assert "x-forwarded-proto, x-real-ip" in record.getMessage()


def test_unread_headers_and_an_invalid_value_give_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(headers=[(b"x-forwarded-proto", b"gopher"), (b"forwarded", b"for=1.2.3.4")])
    for result in (
        call_wsgi(ProxyHeaders(InnerApp().wsgi()), request),
        call_asgi(ProxyHeaders(InnerApp().asgi()), request),
    ):
        assert result.seen is not None
        assert result.seen.head.header(b"forwarded") is None
    messages = [(r.levelno, r.getMessage()) for r in _records(caplog)]
    assert len(messages) == 2  # one line a request
    for level, message in messages:
        assert level == logging.WARNING
        assert "gopher" in message
        assert "removed unread: forwarded" in message


def test_a_port_with_neither_host_nor_server_address_is_logged(
    caplog: pytest.LogCaptureFixture, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """An ASGI server may send ``server: None`` (a unix socket): the port has nowhere to go."""
    caplog.set_level(logging.INFO, logger="bridge")
    request = Request(headers=[(b"x-forwarded-port", b"8443")], server=None)
    app = ProxyHeaders(InnerApp().asgi(), use=["port"])
    result = call_asgi(app, request, backend=anyio_backend[0])
    assert result.seen is not None
    assert result.seen.head.server is None
    (record,) = _records(caplog)
    assert record.levelno == logging.WARNING
    assert "X-Forwarded-Port 8443 (no Host header and no server address)" in record.getMessage()


def test_trusted_from_an_environment_variable_as_the_docs_show(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2")
    app = ProxyHeaders(InnerApp().wsgi(), trusted=os.environ["FORWARDED_ALLOW_IPS"])
    forwarded = [(b"host", b"h"), (b"x-forwarded-for", b"203.0.113.5")]
    for peer, client in [
        (("10.0.0.2", 1), ("203.0.113.5", 0)),
        (("127.0.0.1", 1), ("127.0.0.1", 1)),  # the default (loopback) is replaced
    ]:
        seen = call_wsgi(app, Request(headers=forwarded, client=peer)).seen
        assert seen is not None
        assert seen.head.client == client


@pytest.mark.parametrize(
    ("trusted", "message"),
    [
        pytest.param("10.0.0.1,proxy.local", "'proxy.local' is not an IP", id="name-in-string"),
        pytest.param("10.0.0.1;10.0.0.2", "CIDR", id="semicolons"),
        pytest.param([b"10.0.0.1"], "must be str", id="bytes"),
    ],
)
def test_bad_trusted_entries_say_what_to_fix(trusted: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        ProxyHeaders(InnerApp().wsgi(), trusted=trusted)


# -- a real Django app behind ProxyHeaders --------------------------------------------


def _django_view(request: Any) -> Any:
    from django.http import JsonResponse  # type: ignore[import-untyped]

    return JsonResponse(
        {
            "secure": request.is_secure(),
            "host": request.get_host(),
            "client": request.META.get("REMOTE_ADDR"),
        }
    )


def _urlpatterns() -> list[Any]:
    from django.urls import path  # type: ignore[import-untyped]

    return [path("", _django_view)]


urlpatterns = _urlpatterns()


@pytest.fixture
def django_trusting_proxy_headers() -> Iterator[None]:
    """Django configured the way its docs say for a proxy that sets X-Forwarded-Proto/-Host."""
    from django.test import override_settings  # type: ignore[import-untyped]

    with override_settings(
        ROOT_URLCONF=__name__,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
        USE_X_FORWARDED_HOST=True,
        MIDDLEWARE=[],
    ):
        yield


def _call_django(interface: str, request: Request) -> Result:
    if interface == "wsgi":
        from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

        return call_wsgi(ProxyHeaders(get_wsgi_application()), request)
    from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

    return call_asgi(ProxyHeaders(get_asgi_application()), request)  # Django needs asyncio


@pytest.mark.usefixtures("django_trusting_proxy_headers")
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_django_does_not_believe_an_untrusted_clients_forwarded_headers(interface: str) -> None:
    spoofed = [
        (b"host", b"testserver"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"evil.example"),
    ]
    untrusted = _call_django(interface, Request(headers=spoofed, client=UNTRUSTED))
    assert untrusted.status == 200, untrusted
    assert json.loads(untrusted.body) == {
        "secure": False,
        "host": "testserver",
        "client": "198.51.100.9",
    }
    # from the trusted proxy (loopback): the scheme is applied, and Django agrees
    proxied = _call_django(interface, Request(headers=spoofed, client=("127.0.0.1", 1)))
    assert proxied.status == 200, proxied
    # X-Forwarded-Host is not in use= by default, so it is removed, not believed
    assert json.loads(proxied.body) == {"secure": True, "host": "testserver", "client": "127.0.0.1"}


@pytest.mark.usefixtures("django_trusting_proxy_headers")
def test_without_stripping_django_believes_the_client() -> None:
    """What ``strip_ignored=True`` prevents: the header survives and Django trusts it."""
    from django.core.wsgi import get_wsgi_application

    app = ProxyHeaders(get_wsgi_application(), strip_ignored=False)
    request = Request(headers=[(b"host", b"testserver"), (b"x-forwarded-proto", b"https")])
    result = call_wsgi(app, Request(headers=request.headers, client=UNTRUSTED))
    assert json.loads(result.body)["secure"] is True
