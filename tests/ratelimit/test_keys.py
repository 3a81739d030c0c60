"""Key functions and key sanitising."""

from __future__ import annotations

import pytest

from bridge.middleware import RequestHead
from bridge.ratelimit._keys import (
    client_address,
    client_address_key,
    header_key,
    method_key,
    path_key,
    safe_key,
)


def Head(
    *,
    method: str = "GET",
    path: str = "/",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    client: tuple[str, int] | None = ("10.0.0.1", 1234),
) -> RequestHead:
    """A real request head (key functions take the public RequestHead)."""
    return RequestHead(method, "http", path, "", path.encode(), b"", headers, client, None)


@pytest.mark.parametrize(
    ("client", "key"),
    [
        pytest.param(("10.0.0.1", 1), "10.0.0.1", id="ipv4"),
        pytest.param(("2001:db8::1", 1), "2001:db8::/64", id="ipv6-grouped"),
        pytest.param(("2001:db8::ffff:1", 1), "2001:db8::/64", id="ipv6-same-64"),
        pytest.param(("::ffff:10.1.2.3", 1), "10.1.2.3", id="ipv4-mapped"),
        pytest.param(None, None, id="unix-socket"),
        pytest.param(("", 0), None, id="empty"),
        pytest.param(("testclient", 50000), "testclient", id="not-an-ip"),
    ],
)
def test_client_address(client: tuple[str, int] | None, key: str | None) -> None:
    assert client_address(Head(client=client)) == key


def test_ipv6_prefix_option() -> None:
    assert client_address_key(128)(Head(client=("2001:db8::1", 1))) == "2001:db8::1/128"
    with pytest.raises(ValueError, match="ipv6_prefix"):
        client_address_key(0)


def test_forwarded_headers_are_ignored() -> None:
    head = Head(headers=((b"x-forwarded-for", b"1.2.3.4"), (b"forwarded", b"for=1.2.3.4")))
    assert client_address(head) == "10.0.0.1"


def test_header_key() -> None:
    key = header_key("X-API-Key")
    digested = key(Head(headers=((b"x-api-key", b"abc"),)))
    assert digested is not None
    assert digested.startswith("x-api-key#")
    assert "abc" not in digested
    assert header_key("x-tenant", digest=False)(Head(headers=((b"x-tenant", b"t1"),))) == (
        "x-tenant=t1"
    )
    assert key(Head()) == "10.0.0.1"
    assert header_key("x-api-key", fallback=None)(Head()) is None
    with pytest.raises(ValueError, match="header name"):
        header_key("a:b")


def test_path_and_method() -> None:
    assert path_key(Head(path="/x")) == "/x"
    assert method_key(Head(method="POST")) == "POST"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("k" * 10_000, id="huge"),
        pytest.param("a\r\nb", id="crlf"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param("x{tag}", id="hash-tag-braces"),
        pytest.param("\udcff", id="lone-surrogate"),
    ],
)
def test_safe_key_digests_odd_keys(raw: str) -> None:
    key = safe_key(raw)
    assert key.startswith("sha256:")
    assert len(key) == 47
    assert key == safe_key(raw)


def test_safe_key_keeps_plain_keys() -> None:
    assert safe_key("10.0.0.1") == "10.0.0.1"
