"""Heads: the same request gives an equal head under WSGI and ASGI (property-based)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge._http.translate import BadRequest, environ_from_scope
from bridge.middleware import RequestHead
from bridge.middleware._core.heads import (
    environ_with_head,
    head_from_environ,
    head_from_scope,
    scope_with_head,
    set_header,
    with_header,
)
from bridge.testing import Request

names = st.sampled_from(
    [
        b"host",
        b"accept",
        b"X-Dup",
        b"x-dup",
        b"cookie",
        b"content-type",
        b"content-length",
        b"x_under",
        b"te",
    ]
)
values = st.binary(min_size=0, max_size=12).map(
    lambda raw: bytes(b for b in raw if 0x20 <= b <= 0x7E or b >= 0x80).strip()
)
segments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/?#%"),
    min_size=1,
    max_size=6,
)


@st.composite
def requests(draw: Any) -> Request:
    root = draw(st.sampled_from(["", "/mnt", "/caf\u00e9"]))
    path = root + "/" + "/".join(draw(st.lists(segments, max_size=3)))
    headers = draw(st.lists(st.tuples(names, values), max_size=8))
    query = draw(st.sampled_from([b"", b"a=1", b"q=%C3%A9&x"]))
    scheme = draw(st.sampled_from(["http", "https"]))
    return Request(path=path, root_path=root, headers=headers, query_string=query, scheme=scheme)


def _environ(request: Request) -> dict[str, Any]:
    return environ_from_scope(request.scope(), wsgi_input=io.BytesIO(), wsgi_errors=sys.stderr)


@settings(max_examples=300, deadline=None)
@given(requests())
def test_same_head_under_both_interfaces(request: Request) -> None:
    scope = request.scope()
    try:
        environ = _environ(request)
    except BadRequest:
        with pytest.raises(BadRequest):
            head_from_scope(scope).headers  # noqa: B018 - the same refusal on both sides
        return
    from_scope = head_from_scope(scope)
    from_environ = head_from_environ(environ)
    assert from_scope == from_environ
    for name in (b"host", b"x-dup", b"cookie", b"content-type", b"content-length", b"missing"):
        assert from_scope.header(name) == from_environ.header(name)


@settings(max_examples=200, deadline=None)
@given(requests(), names.map(bytes.lower), values)
def test_with_header_is_set_header_and_writes_back_the_same_under_both(
    request: Request, name: bytes, value: bytes
) -> None:
    """with_header() keeps a driver's lines unread and writes one key or line back; what
    the app gets reads back as set_header() on the full list would give, under both."""
    try:
        environ = _environ(request)
        expected = set_header(head_from_scope(request.scope()).headers, name, value)
    except BadRequest:
        return
    scope = request.scope()
    environ_before, scope_before = dict(environ), {**scope, "headers": list(scope["headers"])}
    values_ = {"bridge.test": 1}

    def via_scope(old: RequestHead, new: RequestHead) -> RequestHead:
        return head_from_scope(scope_with_head(scope, old, new))

    def via_environ(old: RequestHead, new: RequestHead) -> RequestHead:
        return head_from_environ(environ_with_head(environ, old, new))

    for old, write in (
        (head_from_scope(scope), via_scope),
        (head_from_environ(environ), via_environ),
    ):
        new = with_header(old, name, value, values_)
        assert new.values == values_
        if name in (b"content-length", b"content-type") or b"_" in name:
            continue  # set through the full rewrite: compared by the test below
        assert new.headers == expected
        back = write(old, new)
        assert back.headers == expected
        assert back.values == values_
    assert environ == environ_before  # never changed in place
    assert scope == scope_before


@settings(max_examples=150, deadline=None)
@given(requests(), requests())
def test_a_rewritten_head_reads_back_the_same_under_both(first: Request, second: Request) -> None:
    try:
        environ = _environ(first)
        _environ(second)
    except BadRequest:
        return
    scope = first.scope()
    old_scope, old_environ = head_from_scope(scope), head_from_environ(environ)
    target = head_from_scope(second.scope())
    new = old_scope.replace(
        path=target.path,
        root_path=target.root_path,
        raw_path=target.raw_path,
        query_string=target.query_string,
        headers=target.headers,
        scheme=target.scheme,
        client=("203.0.113.1", 0),
    )
    rewritten_scope = head_from_scope(scope_with_head(scope, old_scope, new))
    rewritten_environ = head_from_environ(environ_with_head(environ, old_environ, new))
    assert rewritten_scope == rewritten_environ == new


def test_request_head_is_immutable_and_replace_checks_names() -> None:
    head = head_from_scope(Request().scope())
    with pytest.raises(AttributeError, match="immutable"):
        head.method = "POST"
    with pytest.raises(TypeError, match="no field"):
        head.replace(colour="red")
    assert head.replace(method="POST").method == "POST"
    assert head.method == "GET"
    assert isinstance(head, RequestHead)
    assert "method='GET'" in repr(head)


@settings(max_examples=300, deadline=None)
@given(requests())
def test_a_header_read_alone_is_the_line_the_full_list_holds(request: Request) -> None:
    """A driver's head reads one header without normalizing the rest; it must give the
    line the whole normalized list holds (repeats joined, names lowercased, ``_`` dropped)."""
    scope = request.scope()
    try:
        environ = _environ(request)
        full = head_from_scope(scope).headers
    except BadRequest:
        return
    for name in (b"host", b"x-dup", b"cookie", b"accept", b"te", b"x_under", b"missing"):
        expected = next((value for key, value in full if key == name), None)
        listed = [] if expected is None else [expected]
        assert head_from_scope(scope).header(name) == expected, name
        assert head_from_scope(scope).header_values(name) == listed, name
        assert head_from_environ(environ).header(name) == expected, name


def test_a_scope_header_that_is_not_lowercase_is_still_found() -> None:
    """ASGI servers lowercase names, but a scope built by hand may not: the head
    reads such a line (and joins it with a lowercase repeat) as the full rules do."""
    scope = Request(headers=[(b"X-Forwarded-For", b"1.2.3.4")]).scope()
    assert head_from_scope(scope).header(b"x-forwarded-for") == b"1.2.3.4"
    scope = Request(headers=[(b"x-a", b"1"), (b"X-A", b"2")]).scope()
    assert head_from_scope(scope).header(b"x-a") == b"1, 2"
    assert head_from_scope(scope).header_values(b"x-a") == [b"1, 2"]


def test_a_rewrite_with_values_keeps_a_scope_key_named_values() -> None:
    """``values`` is a head field, not a scope key: a scope's own ``"values"`` key stays."""
    from types import MappingProxyType

    scope: dict[str, Any] = {**Request().scope(), "values": "the server's"}
    head = head_from_scope(scope)  # type: ignore[arg-type]
    new = head.replace(scheme="https", values=MappingProxyType({"bridge.x": 1}))
    copied: dict[str, Any] = scope_with_head(scope, head, new)  # type: ignore[arg-type,assignment]
    assert copied["values"] == "the server's"
    assert copied["bridge.x"] == 1
    assert copied["scheme"] == "https"
    plain = Request().scope()
    head = head_from_scope(plain)
    rewritten: dict[str, Any] = scope_with_head(plain, head, head.replace(values=new.values))  # type: ignore[assignment]
    assert "values" not in rewritten


def test_replaced_is_a_deprecated_spelling_of_replace() -> None:
    head = head_from_scope(Request().scope())
    with pytest.warns(DeprecationWarning, match=r"head\.replace\(\*\*changes\)"):
        rewritten = head.replaced({"method": "POST"})
    assert rewritten == head.replace(method="POST")
    assert rewritten.method == "POST"


def test_every_field_is_built_with_the_head_and_only_the_headers_wait() -> None:
    """An app that changes its environ or scope after the head was made changes nothing
    the head holds (fields are built up front; a scope head keeps the scope's own list)."""
    scope: dict[str, Any] = dict(Request(path="/a", headers=[(b"x-a", b"1")]).scope())
    environ = _environ(Request(path="/a", headers=[(b"x-a", b"1")]))
    from_scope = head_from_scope(scope)  # type: ignore[arg-type]
    from_environ = head_from_environ(environ)
    scope.update(path="/b", method="POST", headers=[(b"x-a", b"2")])
    environ.update(PATH_INFO="/b", REQUEST_METHOD="POST")
    assert (from_scope.path, from_scope.method, from_scope.headers) == (
        "/a",
        "GET",
        ((b"x-a", b"1"),),
    )
    assert (from_environ.path, from_environ.method) == ("/a", "GET")


def test_a_scope_path_that_no_wsgi_path_could_hold_gets_the_wsgi_400() -> None:
    scope = Request(path="/caf\udce9", raw_path=b"/caf%E9").scope()
    with pytest.raises(BadRequest) as from_scope:
        head_from_scope(scope)
    with pytest.raises(BadRequest) as from_environ:
        head_from_environ(_environ(Request(path="/caf\udce9", raw_path=b"/caf%E9")))
    assert (
        str(from_scope.value)
        == str(from_environ.value)
        == "PATH_INFO is not valid UTF-8: '/caf\xe9'"
    )
    assert from_scope.value.status == 400


@pytest.mark.parametrize(
    ("path", "raw_path", "root_path", "refused"),
    [
        ("/caf\ufffd", b"/caf%E9", "", "PATH_INFO is not valid UTF-8: '/caf\xe9'"),
        ("/m/caf\ufffd", b"/m/caf%e9", "/m", "request path is not valid UTF-8: b'/m/caf%e9'"),
        ("/caf\xe9", b"/caf%C3%A9", "", None),  # é in UTF-8
        ("/\ufffd", b"/%EF%BF%BD", "", None),  # a replacement character the client sent
        ("/caf\ufffd", None, "", None),  # no raw_path: nothing to tell it by
    ],
)
def test_scope_path_decoded_with_replacement_is_refused_as_under_wsgi(
    path: str, raw_path: bytes | None, root_path: str, refused: str | None
) -> None:
    """uvicorn, hypercorn and daphne decode a percent-escape that is not UTF-8 to U+FFFD;
    the raw path still holds it, and the head refuses it as a WSGI head refuses the byte."""
    scope: dict[str, Any] = {"type": "http", "path": path, "root_path": root_path, "headers": []}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    if refused is None:
        assert head_from_scope(scope).path == path  # type: ignore[arg-type]
        return
    with pytest.raises(BadRequest) as caught:
        head_from_scope(scope)  # type: ignore[arg-type]
    assert str(caught.value) == refused
    if not root_path:
        wsgi = {"PATH_INFO": "/caf\xe9", "SCRIPT_NAME": "", "REQUEST_METHOD": "GET"}
        with pytest.raises(BadRequest, match="PATH_INFO is not valid UTF-8"):
            head_from_environ(wsgi)
