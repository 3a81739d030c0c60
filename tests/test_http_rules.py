"""The sans-IO HTTP rules of bridge._http, one table per rule.

Each rule has one home (status.py, errors.py, headers.py); these tests pin the
rule itself. That the adapters and the middleware use it (and so answer the same
bytes) is tested in tests/test_one_error_body.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge._http.errors import ErrorBody, check_error_format, error_body
from bridge._http.status import reason_phrase, status_line

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
