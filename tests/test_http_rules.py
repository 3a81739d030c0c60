"""The sans-IO HTTP rules of bridge._http, one table per rule.

Each rule has one home (status.py, errors.py, headers.py); these tests pin the
rule itself. That the adapters and the middleware use it (and so answer the same
bytes) is tested in tests/test_one_error_body.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from bridge._http.errors import ErrorBody, check_error_format, error_body
from bridge._http.headers import (
    FORBIDDEN_IN_VALUE,
    HOP_BY_HOP,
    find_forbidden_in_value,
    is_token,
    parse_length,
)
from bridge._http.status import reason_phrase, status_line
from bridge._http.translate import BadRequest, parse_content_length
from bridge.asgi_to_wsgi._response import wsgi_headers
from bridge.middleware import Answer, CustomHeaders, Exchange, Middleware, RequestHead, Response
from bridge.testing import InnerApp, call_asgi, call_wsgi
from bridge.wsgi_to_asgi._app_run import ResponseError, ResponseState

# -- status lines -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        pytest.param(200, "OK", id="200"),
        pytest.param(400, "Bad Request", id="400"),
        pytest.param(413, "Content Too Large", id="413-rfc9110-name"),
        pytest.param(414, "URI Too Long", id="414-rfc9110-name"),
        pytest.param(416, "Range Not Satisfiable", id="416-rfc9110-name"),
        pytest.param(422, "Unprocessable Content", id="422-rfc9110-name"),
        pytest.param(431, "Request Header Fields Too Large", id="431"),
        pytest.param(500, "Internal Server Error", id="500"),
        pytest.param(504, "Gateway Timeout", id="504"),
        pytest.param(599, "", id="unknown"),
    ],
)
def test_reason_phrase(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase
    assert status_line(status) == f"{status} {phrase}"


# -- error bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "detail", "body"),
    [
        pytest.param(500, None, b"Internal Server Error\n", id="500"),
        pytest.param(400, "bad length", b"Bad Request: bad length\n", id="400-detail"),
        pytest.param(
            431,
            "more than 100 request header lines",
            b"Request Header Fields Too Large: more than 100 request header lines\n",
            id="431-not-internal-server-error",
        ),
        pytest.param(413, None, b"Content Too Large\n", id="413-rfc9110"),
        pytest.param(599, "odd", b"Error: odd\n", id="unknown-status"),
        pytest.param(400, "caf\u00e9", "Bad Request: caf\u00e9\n".encode(), id="utf8-detail"),
    ],
)
def test_text_error_body(status: int, detail: str | None, body: bytes) -> None:
    rendered = error_body(status, detail)
    assert rendered == ErrorBody(b"text/plain; charset=utf-8", body)
    assert rendered.headers == (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    )


@pytest.mark.parametrize(
    ("status", "detail", "members", "document"),
    [
        pytest.param(
            500,
            None,
            None,
            {"type": "about:blank", "title": "Internal Server Error", "status": 500},
            id="500",
        ),
        pytest.param(
            413,
            "too big",
            None,
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": "too big",
            },
            id="detail",
        ),
        pytest.param(
            429,
            "retry in 3 seconds.",
            {"type": "urn:quota", "title": "Quota", "policies": ["a"]},
            {
                "type": "urn:quota",
                "title": "Quota",
                "status": 429,
                "detail": "retry in 3 seconds.",
                "policies": ["a"],
            },
            id="members-override",
        ),
    ],
)
def test_problem_json_error_body(
    status: int, detail: str | None, members: dict[str, Any] | None, document: dict[str, Any]
) -> None:
    rendered = error_body(status, detail, "problem+json", members)
    assert rendered.content_type == b"application/problem+json"
    assert json.loads(rendered.body) == document
    assert list(json.loads(rendered.body)) == list(document)  # RFC 9457's member order


def test_text_ignores_problem_members() -> None:
    assert error_body(429, "x", "text", {"type": "urn:q"}).body == b"Too Many Requests: x\n"


@pytest.mark.parametrize("value", ["text", "problem+json"])
def test_error_format_accepts_its_two_names(value: str) -> None:
    assert check_error_format(value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("problem", id="old-ratelimit-spelling"),
        pytest.param("json", id="other"),
        pytest.param(None, id="none"),
    ],
)
def test_error_format_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match=r"error_format must be 'text' or 'problem\+json'"):
        check_error_format(value)


# -- header names and values: one rule, the same answer from every component --------


def wsgi_to_asgi_response(name: str, value: str) -> None:
    ResponseState(lambda message: None, head_request=False).start_response(
        "200 OK", [(name, value)], None
    )


def asgi_to_wsgi_response(name: str, value: str) -> None:
    wsgi_headers([(name.encode("latin-1"), value.encode("latin-1"))])


def configured(name: str, value: str) -> None:
    CustomHeaders(InnerApp().wsgi(), set_response={name: value})


CHECKERS = [
    pytest.param(wsgi_to_asgi_response, id="WsgiToAsgi-response"),
    pytest.param(asgi_to_wsgi_response, id="AsgiToWsgi-response"),
    pytest.param(configured, id="middleware-option"),
]


@pytest.mark.parametrize("check", CHECKERS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X(Y)", id="parentheses"),
        pytest.param("a b", id="space"),
        pytest.param("a:b", id="colon"),
        pytest.param("", id="empty"),
        pytest.param("x\r\nInjected", id="crlf"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param('a"b', id="quote"),
    ],
)
def test_a_name_that_is_not_a_token_is_refused_everywhere_alike(
    check: Callable[[str, str], None], name: str
) -> None:
    assert not is_token(name)
    with pytest.raises(Exception, match=re.escape(f"{name!r:.60} is not an HTTP token")):
        check(name, "v")


@pytest.mark.parametrize("check", CHECKERS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X-Token", id="plain"),
        pytest.param("x!#$%&'*+-.^_`|~9", id="every-symbol"),
        pytest.param("ETag", id="mixed-case"),
    ],
)
def test_a_token_is_a_name_everywhere(check: Callable[[str, str], None], name: str) -> None:
    assert is_token(name)
    check(name, "v")


@pytest.mark.parametrize("check", CHECKERS)
@pytest.mark.parametrize(
    ("value", "refused"),
    [
        pytest.param("a\rb", True, id="cr"),
        pytest.param("a\nb", True, id="lf"),
        pytest.param("a\0b", True, id="nul"),
        pytest.param("a\tb", False, id="tab"),
        pytest.param("a\x01b", False, id="other-control"),
        pytest.param("caf\u00e9", False, id="obs-text"),
    ],
)
def test_cr_lf_nul_are_the_only_characters_a_value_may_not_hold(
    check: Callable[[str, str], None], value: str, refused: bool
) -> None:
    assert bool(find_forbidden_in_value(value)) is refused
    assert any(char in value for char in FORBIDDEN_IN_VALUE) is refused
    if refused:
        with pytest.raises(Exception, match="contains CR, LF or NUL"):
            check("x-value", value)
    else:
        check("x-value", value)


# -- hop-by-hop ---------------------------------------------------------------------

HOP_NAMES = [pytest.param(name.decode(), id=name.decode()) for name in sorted(HOP_BY_HOP)]


@pytest.mark.parametrize("name", HOP_NAMES)
def test_an_asgi_apps_hop_by_hop_response_header_never_reaches_a_wsgi_server(name: str) -> None:
    kept = wsgi_headers([(name.title().encode(), b"x"), (b"x-kept", b"1")])
    assert kept == [("x-kept", "1")]


@pytest.mark.parametrize("name", HOP_NAMES)
def test_hop_by_hop_headers_cannot_be_configured(name: str) -> None:
    with pytest.raises(ValueError, match="framing headers the server owns"):
        CustomHeaders(InnerApp().wsgi(), remove_response=[name])


def test_a_middleware_response_under_wsgi_carries_no_hop_by_hop_header() -> None:
    class CloseAndTell(Middleware):
        def exchange(self, head: RequestHead, now: float) -> Exchange:
            response = Response.error(
                503, headers=((b"connection", b"close"), (b"upgrade", b"h2c"), (b"x-kept", b"1"))
            )
            return Answer(head, now, response)

    wsgi = call_wsgi(CloseAndTell(InnerApp().wsgi()))  # wsgiref.validate refuses hop-by-hop
    asgi = call_asgi(CloseAndTell(InnerApp().asgi()))
    assert wsgi.header(b"connection") is None
    assert wsgi.header(b"upgrade") is None
    assert wsgi.header(b"x-kept") == b"1"
    assert asgi.header(b"connection") == b"close"  # an ASGI server may honour it


# -- Content-Length -----------------------------------------------------------------

LENGTHS = [
    pytest.param(b"0", 0, id="zero"),
    pytest.param(b"42", 42, id="digits"),
    pytest.param(b" 42\t", 42, id="whitespace"),
    pytest.param(b"007", 7, id="leading-zeros"),
    pytest.param(b"9" * 19, int("9" * 19), id="19-digits"),
    pytest.param(b"9" * 20, None, id="20-digits"),
    pytest.param(b"", None, id="empty"),
    pytest.param(b"-1", None, id="negative"),
    pytest.param(b"+1", None, id="plus"),
    pytest.param(b"1.0", None, id="decimal"),
    pytest.param(b"5, 5", None, id="list"),
    pytest.param(b"ten", None, id="word"),
    pytest.param("\u00b2".encode(), None, id="superscript-two"),
]


@pytest.mark.parametrize(("value", "length"), LENGTHS)
def test_parse_length(value: bytes, length: int | None) -> None:
    assert parse_length(value) == length
    assert parse_length(value.decode("utf-8")) == length  # the environ's str, the same rule


@pytest.mark.parametrize(("value", "length"), LENGTHS)
def test_every_content_length_reader_follows_the_rule(value: bytes, length: int | None) -> None:
    if length is None:
        with pytest.raises(BadRequest, match="invalid Content-Length"):
            parse_content_length([value])
    else:
        assert parse_content_length([value]) == length
    state = ResponseState(lambda message: None, head_request=False)
    if length is None:
        with pytest.raises(ResponseError, match="invalid response Content-Length"):
            state.start_response("200 OK", [("Content-Length", value.decode("latin-1"))], None)
    else:
        state.start_response("200 OK", [("Content-Length", value.decode("latin-1"))], None)


def test_a_repeated_request_content_length_is_refused() -> None:
    with pytest.raises(BadRequest, match="duplicated Content-Length"):
        parse_content_length([b"5", b"5"])
