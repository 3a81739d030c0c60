"""The shared environ <-> scope rules (sans-IO: no app, no server, no loop)."""

from __future__ import annotations

import io
import sys

import pytest
from asgiref.typing import HTTPScope

from bridge._http.translate import (
    BadRequest,
    environ_from_scope,
    environ_header,
    environ_lines_named,
    normalize_request_headers,
    parse_content_length,
    scope_from_environ,
    scope_header,
    scope_lines_named,
    split_root_path,
)


def make_scope(**overrides: object) -> HTTPScope:
    scope: dict[str, object] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("10.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }
    scope.update(overrides)
    return scope  # type: ignore[return-value]


def environ_for(scope: HTTPScope, **options: object) -> dict[str, object]:
    return environ_from_scope(
        scope,
        wsgi_input=io.BytesIO(),
        wsgi_errors=sys.stderr,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        pytest.param("/mnt/a", "/mnt", ("/mnt", "/a"), id="owned"),
        pytest.param("/mnt", "/mnt", ("/mnt", ""), id="exact"),
        pytest.param("/mntx/a", "/mnt", ("/mnt", "/mntx/a"), id="not-at-segment"),
        pytest.param("/a", "/mnt/", ("/mnt", "/a"), id="relative-path-trailing-slash-root"),
        pytest.param("/a", "", ("", "/a"), id="no-root"),
    ],
)
def test_split_root_path(path: str, root: str, expected: tuple[str, str]) -> None:
    assert split_root_path(path, root) == expected


def test_non_ascii_path_under_root_path_is_latin1_bytes_in_str() -> None:
    scope = make_scope(path="/mnt/caf\u00e9", root_path="/mnt", query_string="q=\u00e9".encode())
    environ = environ_for(scope)
    assert environ["SCRIPT_NAME"] == "/mnt"
    assert environ["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "q=\u00e9".encode().decode("latin-1")


def test_headers_join_and_special_keys() -> None:
    scope = make_scope(
        headers=[
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"accept", b"a"),
            (b"accept", b"b"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x_user", b"spoof"),
            (b"x-user", b"real"),
        ]
    )
    environ = environ_for(scope)
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_ACCEPT"] == "a, b"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_USER"] == "real"


def test_underscore_headers_allowed_when_asked() -> None:
    environ = environ_for(
        make_scope(headers=[(b"x_user", b"v")]), allow_underscores_in_headers=True
    )
    assert environ["HTTP_X_USER"] == "v"


def test_too_many_header_lines_is_431() -> None:
    scope = make_scope(headers=[(b"x-a", b"1")] * 10_000)
    with pytest.raises(BadRequest) as info:
        environ_for(scope)
    assert info.value.status == 431


@pytest.mark.parametrize("values", [[b"-1"], [b"abc"], [b"5", b"5"], [b"1e3"], [b""]])
def test_bad_content_length_is_400(values: list[bytes]) -> None:
    with pytest.raises(BadRequest) as info:
        parse_content_length(values)
    assert info.value.status == 400


def test_round_trip_scope_environ_scope() -> None:
    scope = make_scope(
        path="/mnt/caf\u00e9",
        raw_path=b"/mnt/caf%C3%A9",
        root_path="/mnt",
        query_string=b"a=1",
        headers=[(b"host", b"example.com"), (b"x-a", b"1"), (b"content-length", b"3")],
    )
    back = scope_from_environ(environ_for(scope))
    assert back["path"] == "/mnt/caf\u00e9"
    assert back["root_path"] == "/mnt"
    assert back["raw_path"] == b"/mnt/caf%C3%A9"
    assert back["query_string"] == b"a=1"
    assert sorted(back["headers"]) == sorted(scope["headers"])
    assert back["client"] == ("10.0.0.1", 5000)
    assert back["server"] == ("127.0.0.1", 8000)


def test_non_utf8_path_info_is_400() -> None:
    with pytest.raises(BadRequest):
        scope_from_environ({"PATH_INFO": "/\xff", "REQUEST_METHOD": "GET"})


# -- helpers added for the middleware drivers -----------------------------------


def test_normalize_request_headers_matches_an_environ_round_trip() -> None:
    from bridge._http.translate import headers_from_environ, normalize_request_headers

    raw = [
        (b"host", b"h"),
        (b"X-A", b"1"),
        (b"x-a", b"2"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"x_b", b"spoof"),
    ]
    environ = environ_for(make_scope(headers=raw))
    assert normalize_request_headers(raw) == headers_from_environ(environ)
    plain = [(b"host", b"h"), (b"accept", b"*/*")]
    assert normalize_request_headers(plain) == plain


def test_apply_scope_fields_to_environ_gives_what_the_scope_would() -> None:
    from bridge._http.translate import apply_scope_fields_to_environ

    old = make_scope()
    new = make_scope(
        scheme="https",
        path="/mnt/caf\u00e9",
        root_path="/mnt",
        raw_path=b"/mnt/caf%C3%A9",
        query_string=b"q=1",
        headers=[(b"host", b"example.org"), (b"content-length", b"3")],
        client=("203.0.113.9", 1),
        server=("example.org", 443),
        method="POST",
        http_version="2",
    )
    environ = environ_for(old)
    changed = [k for k in new if k not in ("type", "asgi", "extensions")]
    apply_scope_fields_to_environ(environ, dict(new), changed)
    expected = environ_for(new)
    for key in (
        "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI",
        "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme",
        "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST", "CONTENT_LENGTH",
    ):  # fmt: skip
        assert environ[key] == expected[key], key


def test_header_lookups_agree_with_the_full_translation() -> None:
    from bridge._http.translate import (
        environ_header,
        headers_from_environ,
        normalize_request_headers,
    )

    raw = [
        (b"host", b"h"),
        (b"X-A", b"1"),
        (b"x-a", b"2"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"content-type", b"text/a"),
        (b"content-type", b"text/b"),
        (b"x_b", b"spoof"),
        (b"x-empty", b""),
    ]
    full_scope = dict(normalize_request_headers(raw))
    full_environ = dict(headers_from_environ(environ_for(make_scope(headers=raw))))
    assert full_scope == full_environ
    environ = environ_for(make_scope(headers=raw))
    for name in [b"host", b"x-a", b"cookie", b"content-type", b"x_b", b"x-empty", b"missing"]:
        assert environ_header(environ, name) == full_scope.get(name), name


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"content-length", b"100")], id="canonical-length"),
        pytest.param([(b"content-length", b"0100")], id="leading-zero"),
        pytest.param([(b"content-length", b"0")], id="zero"),
        pytest.param([(b"content-length", b" 5")], id="space"),
        pytest.param([(b"content-type", b"")], id="empty-type"),
        pytest.param([(b"content-type", b"text/plain"), (b"host", b"h")], id="type"),
        pytest.param([(b"content-length", b"9" * 20)], id="too-long"),
        pytest.param([(b"content-length", b"-1")], id="negative"),
    ],
)
def test_normalize_fast_path_agrees_with_the_general_rules(
    headers: list[tuple[bytes, bytes]],
) -> None:
    from bridge._http.translate import BadRequest, _regroup, normalize_request_headers

    try:
        expected: object = _regroup(list(headers))
    except BadRequest as exc:
        expected = str(exc)
    try:
        got: object = normalize_request_headers(headers)
    except BadRequest as exc:
        got = str(exc)
    assert got == expected


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([(b"host", b"x"), (b"x-forwarded-for", b"1.2.3.4")], id="usual"),
        pytest.param(
            [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"5.6.7.8")], id="repeated"
        ),
        pytest.param([(b"X-Forwarded-For", b"1.2.3.4"), (b"host", b"x")], id="uppercase"),
        pytest.param([(b"x_forwarded_for", b"1.2.3.4")], id="underscore-dropped"),
        pytest.param([(b"123", b"digits"), (b"x-forwarded-proto", b"https")], id="uncased-name"),
        pytest.param([], id="none"),
        pytest.param([(b"content-length", b"12"), (b"content-type", b"text/plain")], id="bare"),
        pytest.param([(b"content-length", b"012"), (b"host", b"x")], id="length-rewritten"),
        pytest.param([(b"content-type", b""), (b"host", b"x")], id="empty-type-dropped"),
    ],
)
def test_scope_lines_named_agrees_with_the_normalized_lines(
    lines: list[tuple[bytes, bytes]],
) -> None:
    names = frozenset(
        {b"x-forwarded-for", b"x-forwarded-proto", b"content-length", b"content-type"}
    )
    expected = {k: v for k, v in normalize_request_headers(lines) if k in names}
    assert scope_lines_named(lines, names) == expected
    for name in names:  # and one name at a time
        assert scope_header(lines, name) == expected.get(name)


@pytest.mark.parametrize(
    "lines",
    [
        [(b"content-length", b"12x"), (b"host", b"x")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"1, 2")],
        [(b"content-length", b"5"), (b"host", b"x"), (b"content-length", b"5")],
    ],
    ids=["letters", "negative", "list", "twice"],
)
def test_a_content_length_the_full_rules_refuse_is_refused_by_one_name_lookups(
    lines: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(BadRequest):
        normalize_request_headers(lines)
    with pytest.raises(BadRequest):
        scope_header(lines, b"content-length")
    with pytest.raises(BadRequest):
        scope_lines_named(lines, frozenset({b"content-length"}))


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "HTTP_FORWARDED": "", "CONTENT_TYPE": ""},
        {"CONTENT_LENGTH": "5", "HTTP_X_REAL_IP": "10.0.0.1", "HTTP_X_FORWARDED_PROTO": "https"},
        {},
    ],
)
def test_environ_lines_named_gives_what_environ_header_gives(environ: dict[str, str]) -> None:
    names = frozenset(
        {b"x-forwarded-for", b"forwarded", b"content-type", b"content-length", b"x-real-ip",
         b"x-forwarded-proto", b"x_underscored"}
    )  # fmt: skip
    expected = {name: environ_header(environ, name) for name in names}
    got = environ_lines_named(environ, names)
    assert got == {name: value for name, value in expected.items() if value is not None}
