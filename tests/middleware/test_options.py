"""The options language at the middleware edge: old spellings, one-pattern exempt, errors."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace
from typing import Any

import pytest

import bridge
from bridge import CustomHeaders, RequestBufferingRule, SecurityHeaders
from bridge.ratelimit import ConcurrencyLimit, RateLimit, Rule
from bridge.testing import InnerApp, Request, call_wsgi

APP = InnerApp().wsgi()
NOSNIFF = b"x-content-type-options"


@pytest.mark.parametrize(
    ("build", "old", "new"),
    [
        pytest.param(
            lambda: SecurityHeaders(APP, exempt_paths=["/healthz"]),
            "exempt_paths",
            "exempt",
            id="security-exempt_paths",
        ),
        pytest.param(
            lambda: CustomHeaders(APP, set_response={"x-a": "1"}, exclude_paths=["/healthz"]),
            "exclude_paths",
            "exempt",
            id="headers-exclude_paths",
        ),
    ],
)
def test_old_option_names_warn_and_keep_working(build: Any, old: str, new: str) -> None:
    with pytest.warns(
        DeprecationWarning, match=rf"\({old}=\.\.\.\) is deprecated.*use {new}="
    ) as w:
        app = build()
    assert w[0].filename == __file__
    assert call_wsgi(app, Request(path="/healthz/live")).headers == [
        (b"content-type", b"text/plain; charset=utf-8")
    ]
    assert len(call_wsgi(app, Request(path="/other")).headers) > 1


def test_old_and_new_names_together_are_refused() -> None:
    with pytest.raises(TypeError, match="give exempt= only"):
        SecurityHeaders(APP, exempt=["/a"], exempt_paths=["/b"])


def test_deprecated_rule_path_warns_and_still_matches() -> None:
    with pytest.warns(DeprecationWarning, match="write '/api'") as w:
        app = RateLimit(APP, None, rules=[Rule("1/minute", path="/api/*")])
    assert w[0].filename == __file__
    assert call_wsgi(app, Request(path="/api")).status == 200
    assert call_wsgi(app, Request(path="/api/x")).status == 429
    assert call_wsgi(app, Request(path="/apix")).header(b"ratelimit") is None


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda e: SecurityHeaders(APP, exempt=e), id="security"),
        pytest.param(
            lambda e: CustomHeaders(APP, set_response={"x-a": "1"}, exempt=e), id="headers"
        ),
        pytest.param(lambda e: RateLimit(APP, "1/minute", exempt=e), id="ratelimit"),
        pytest.param(lambda e: ConcurrencyLimit(APP, 1, exempt=e), id="concurrency"),
    ],
)
def test_one_pattern_without_a_list_is_one_pattern(build: Any) -> None:
    single = build("/healthz")
    listed = build(["/healthz"])
    for path in ("/healthz", "/healthz/live", "/other", "/other"):
        assert call_wsgi(single, Request(path=path)) == call_wsgi(listed, Request(path=path))
    assert single.exempt(SimpleNamespace(path="/mnt/healthz/live", root_path="/mnt"))
    assert not single.exempt(SimpleNamespace(path="/mnt/other", root_path="/mnt"))


def test_rule_methods_as_a_string_matches_that_method() -> None:
    app = RateLimit(APP, None, rules=[Rule("1/minute", path="=/login", methods="POST")])
    assert call_wsgi(app, Request(method="POST", path="/login")).status == 200
    assert call_wsgi(app, Request(method="POST", path="/login")).status == 429
    assert call_wsgi(app, Request(method="GET", path="/login")).status == 200


def test_exact_form_gives_the_old_exact_exemption() -> None:
    app = RateLimit(APP, "1/minute", exempt="=/healthz")
    assert call_wsgi(app, Request(path="/healthz")).header(b"ratelimit") is None
    assert call_wsgi(app, Request(path="/healthz/live")).header(b"ratelimit") is not None


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        pytest.param(
            lambda: RateLimit(APP, limit=100),  # type: ignore[arg-type]
            TypeError,
            "bare number.*'100/minute'",
            id="int",
        ),
        pytest.param(
            lambda: RateLimit(APP, None, rules=[Rule(2.5)]),  # type: ignore[arg-type]
            TypeError,
            r"rules\[0\]\.limit=2.5 is a bare number",
            id="rule-float",
        ),
        pytest.param(
            lambda: RateLimit(APP, rules=[("5/minute", "/login")]),  # type: ignore[list-item]
            TypeError,
            r"rules\[0\] must be a bridge.ratelimit.Rule, not tuple.*write e.g. Rule\(",
            id="rules-tuple",
        ),
        pytest.param(
            lambda: RateLimit(APP, rules=Rule("5/minute")),  # type: ignore[arg-type]
            TypeError,
            "rules must be a list of Rule",
            id="rules-one-rule",
        ),
        pytest.param(
            lambda: RateLimit(APP, rules=[Rule("5/minute", methods="GET;POST")]),
            ValueError,
            r"rules\[0\]\.methods: 'GET;POST' is not an HTTP method",
            id="rule-methods",
        ),
        pytest.param(
            lambda: RateLimit(APP, rules=[Rule("5/minute", path="login")]),
            ValueError,
            r"rules\[0\]\.path: path pattern 'login' must start with '/'",
            id="rule-path",
        ),
        pytest.param(
            lambda: RequestBufferingRule("/u", methods=["GET", "PO ST"]),
            ValueError,
            "'PO ST' is not an HTTP method",
            id="buffering-methods",
        ),
        pytest.param(
            lambda: RequestBufferingRule(re.compile(rb"/u")),  # type: ignore[arg-type]
            TypeError,
            "of str, not bytes",
            id="buffering-bytes-regex",
        ),
        pytest.param(
            lambda: ConcurrencyLimit(APP, 1, exempt=["healthz"]),
            ValueError,
            r"ConcurrencyLimit: exempt\[0\]: path pattern 'healthz' must start with '/'",
            id="concurrency-exempt",
        ),
        pytest.param(
            lambda: CustomHeaders(APP, set_response={"x": "1"}, paths=[b"/static"]),  # type: ignore[list-item]
            TypeError,
            r"CustomHeaders: paths\[0\]",
            id="headers-paths-bytes",
        ),
    ],
)
def test_misconfiguration_says_what_to_write(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("module", ["bridge", "bridge.middleware", "bridge.middleware.headers"])
def test_headers_is_the_deprecated_name_of_custom_headers(module: str) -> None:
    imported = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match="renamed .*CustomHeaders"):
        old = imported.Headers
    assert old is bridge.CustomHeaders
