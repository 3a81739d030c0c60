"""The sans-IO HTTP rules of bridge._http, one table per rule.

Each rule has one home (status.py, errors.py, headers.py); these tests pin the
rule itself. That the adapters and the middleware use it (and so answer the same
bytes) is tested in tests/test_one_error_body.py.
"""

from __future__ import annotations

import pytest

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
