"""What a decision shows: the log line, the on_decision hook, the decision on the request,
custom rejections, and the mistakes refused (a missing limit, a key function's None)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bridge import ConcurrencyLimit, RateLimit
from bridge.middleware import RequestHead, Response
from bridge.ratelimit import LimitDecision, MemoryStore, Rule, Verdict, header_key
from bridge.testing import FakeClock, InnerApp, Request, call_asgi, call_wsgi


def both(build: Any) -> list[tuple[str, Any, Any]]:
    """The middleware built around the WSGI and the ASGI inner app, with a caller each."""
    return [
        ("wsgi", build(InnerApp().wsgi()), call_wsgi),
        ("asgi-asyncio", build(InnerApp().asgi()), lambda mw, r: call_asgi(mw, r)),
        ("asgi-trio", build(InnerApp().asgi()), lambda mw, r: call_asgi(mw, r, backend="trio")),
    ]


# -- item 9: mistakes refused -----------------------------------------------------------


def test_no_limit_warns_and_still_means_100_per_minute() -> None:
    with pytest.warns(DeprecationWarning, match=r"limit='100/minute' to keep that") as caught:
        mw = RateLimit(InnerApp().wsgi())
    assert caught[0].filename == __file__  # points at the caller's line
    response = call_wsgi(mw, Request())
    assert response.header(b"ratelimit-policy") == b'"100/minute";q=100;w=60'


def test_no_limit_with_rules_warns_about_unmatched_requests() -> None:
    with pytest.warns(DeprecationWarning, match="every request no rule matches"):
        RateLimit(InnerApp().wsgi(), rules=[Rule("1/second", path="/api")])


def test_explicit_limits_do_not_warn() -> None:
    RateLimit(InnerApp().wsgi(), "100/minute")
    RateLimit(InnerApp().wsgi(), None, rules=[Rule("1/second", path="/api")])


def test_key_function_none_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.ratelimit")

    def user(head: Any) -> str | None:
        return None  # e.g. not logged in: documented as "not limited"

    mw = RateLimit(InnerApp().wsgi(), "1/minute", key=user)
    # Even without a client address: the key function never read it.
    for request in (Request(), Request(), Request(client=None)):
        assert call_wsgi(mw, request).status == 200
    assert caplog.records == []


def test_header_key_without_fallback_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().wsgi(), "1/minute", key=header_key("x-api-key", fallback=None))
    assert call_wsgi(mw, Request(client=None)).status == 200
    assert caplog.records == []


def test_header_key_falling_back_to_a_missing_address_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().wsgi(), "1/minute", key=header_key("x-api-key"))
    assert call_wsgi(mw, Request(client=None)).status == 200
    assert call_wsgi(mw, Request(client=None)).status == 200
    (record,) = caplog.records
    assert "no client address" in record.getMessage()


# -- item 8: rejections users can see --------------------------------------------------


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_rejection_is_one_warning_with_extra_fields(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    inner = InnerApp().wsgi() if interface == "wsgi" else InnerApp().asgi()
    mw = RateLimit(inner, "1/minute", key=header_key("x-api-key"), clock=FakeClock())
    send = call_wsgi if interface == "wsgi" else call_asgi
    request = Request(headers=[(b"x-api-key", b"secret-123")], client=("203.0.113.9", 5))
    assert [send(mw, request).status for _ in range(2)] == [200, 429]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "secret-123" not in message  # the key as stored: a digest
    assert record.__dict__["ratelimit_key"].startswith("x-api-key#")
    assert record.__dict__["ratelimit_key"] in message
    assert record.__dict__["ratelimit_rule"] == "default"
    assert record.__dict__["ratelimit_client"] == "203.0.113.9"
    assert record.__dict__["ratelimit_policy"] == '"1/minute";q=1;w=60'
    assert record.__dict__["ratelimit_result"] == "rejected"
    assert record.__dict__["ratelimit_retry_after"] == 60
    assert "GET /" in message


def test_rejection_log_level_none_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.ratelimit")
    mw = RateLimit(InnerApp().wsgi(), "1/minute", log_level=None, clock=FakeClock())
    assert [call_wsgi(mw, Request()).status for _ in range(2)] == [200, 429]
    assert caplog.records == []


@pytest.mark.parametrize("bad", [0, -1, "INFO", True])
def test_log_level_must_be_a_level(bad: object) -> None:
    with pytest.raises(ValueError, match="log_level must be a logging level"):
        RateLimit(InnerApp().wsgi(), "1/minute", log_level=bad)  # type: ignore[arg-type]


def test_on_decision_sees_every_decision_under_both_interfaces() -> None:
    for name, mw_decisions, send in _with_hook(
        lambda app, hook: RateLimit(app, "2/minute", on_decision=hook, clock=FakeClock())
    ):
        mw, decisions = mw_decisions
        assert [send(mw, Request()).status for _ in range(3)] == [200, 200, 429], name
        assert [d.result for d in decisions] == ["allowed", "allowed", "rejected"], name
        assert [d.remaining for d in decisions] == [1, 0, 0], name
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[-1].retry_after == 30
        assert decisions[-1].violated == ("2/minute",)
        assert decisions[0].key == "127.0.0.1"
        assert decisions[0].limit == 2


def _with_hook(build: Any) -> list[tuple[str, tuple[Any, list[LimitDecision]], Any]]:
    out = []
    for name, inner, send in (
        ("wsgi", InnerApp().wsgi(), call_wsgi),
        ("asyncio", InnerApp().asgi(), call_asgi),
        ("trio", InnerApp().asgi(), lambda mw, r: call_asgi(mw, r, backend="trio")),
    ):
        decisions: list[LimitDecision] = []
        out.append((name, (build(inner, decisions.append), decisions), send))
    return out


def test_on_decision_dry_run_and_store_unavailable() -> None:
    decisions: list[LimitDecision] = []
    mw = RateLimit(
        InnerApp().wsgi(), "1/minute", dry_run=True, on_decision=decisions.append, clock=FakeClock()
    )
    assert [call_wsgi(mw, Request()).status for _ in range(2)] == [200, 200]
    assert [(d.result, d.allowed) for d in decisions] == [("allowed", True), ("dry_run", True)]

    class Down(MemoryStore):
        local = True

        def check(self, *args: Any) -> Verdict:
            return Verdict(False, (), unavailable=True)

    decisions.clear()
    closed = RateLimit(InnerApp().wsgi(), "1/minute", store=Down(), on_decision=decisions.append)
    assert call_wsgi(closed, Request()).status == 503
    (decision,) = decisions
    assert (decision.result, decision.allowed, decision.remaining) == (
        "store_unavailable",
        False,
        0,
    )


def test_a_failing_hook_is_logged_once_and_never_reaches_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")

    def broken(decision: LimitDecision) -> None:
        raise RuntimeError("metrics backend down")

    mw = RateLimit(InnerApp().wsgi(), "5/minute", on_decision=broken, clock=FakeClock())
    assert [call_wsgi(mw, Request()).status for _ in range(3)] == [200] * 3
    (record,) = caplog.records
    assert "on_decision" in record.getMessage()
    assert record.exc_info is not None


def test_on_decision_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_decision must be a function"):
        RateLimit(InnerApp().wsgi(), "1/minute", on_decision="metrics")  # type: ignore[arg-type]


# -- item 4: custom rejections, the decision on the request --------------------------


def test_the_app_reads_its_remaining_quota_under_both_interfaces() -> None:
    for name, mw, send in both(lambda app: RateLimit(app, "3/minute", clock=FakeClock())):
        seen = [send(mw, Request()).seen for _ in range(2)]
        decisions = [s.head.values["bridge.ratelimit"] for s in seen]
        assert [d.remaining for d in decisions] == [2, 1], name
        assert decisions[0].policy == '"3/minute";q=3;w=60'


def test_the_wsgi_app_finds_the_decision_in_its_environ() -> None:
    found: list[LimitDecision] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        decision = environ["bridge.ratelimit"]
        found.append(decision)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{decision.remaining} attempts left".encode()]

    mw = RateLimit(app, "3/minute", clock=FakeClock())
    assert call_wsgi(mw, Request()).body == b"2 attempts left"
    assert found[0].rule == "default"


def test_rejection_callable_per_rule() -> None:
    def login_page(head: RequestHead, decision: LimitDecision) -> Response:
        body = f"<p>Too many attempts at {head.path}; wait {decision.retry_after} s.</p>"
        return Response(429, ((b"content-type", b"text/html"),), body.encode())

    for name, mw, send in both(
        lambda app: RateLimit(
            app,
            "100/minute",
            rules=[Rule("1/minute", path="=/login", rejection=login_page)],
            clock=FakeClock(),
        )
    ):
        assert send(mw, Request(path="/login")).status == 200, name
        response = send(mw, Request(path="/login"))
        assert response.status == 429
        assert response.body == b"<p>Too many attempts at /login; wait 60 s.</p>"
        assert response.header(b"content-type") == b"text/html"
        assert response.header(b"retry-after") == b"60"
        assert response.header(b"ratelimit") == b'"1/minute";r=0;t=60'


def test_rejection_template_json_and_html_escaping() -> None:
    template = Response(
        429,
        ((b"content-type", b"application/json"),),
        b'{"error": "slow down", "retry_after": $retry_after, "policy": "$policy", '
        b'"rule": "$rule", "limit": $limit, "remaining": $remaining}',
    )
    mw = RateLimit(InnerApp().wsgi(), "1/minute", rejection=template, clock=FakeClock())
    call_wsgi(mw, Request())
    response = call_wsgi(mw, Request())
    assert response.status == 429
    assert json.loads(response.body) == {
        "error": "slow down",
        "retry_after": 60,
        "policy": "1/minute",
        "rule": "default",
        "limit": 1,
        "remaining": 0,
    }
    assert response.header(b"content-length") == str(len(response.body)).encode()

    page = Response(503, ((b"content-type", b"text/html"),), b"<b>$rule</b> costs $$5")
    html_mw = RateLimit(InnerApp().wsgi(), "1/minute", rejection=page, clock=FakeClock())
    call_wsgi(html_mw, Request())
    rejected = call_wsgi(html_mw, Request())
    assert (rejected.status, rejected.body) == (503, b"<b>default</b> costs $5")


@pytest.mark.parametrize(
    ("rejection", "error", "message"),
    [
        pytest.param(Response(429, (), b"$retry"), ValueError, r"\$retry_after", id="unknown"),
        pytest.param(Response(429, (), b"\xff"), ValueError, "UTF-8", id="not-utf8"),
        pytest.param(Response(200, (), b""), ValueError, "error status", id="status"),
        pytest.param("Too many", TypeError, "Response .a template. or a function", id="str"),
    ],
)
def test_bad_rejections_are_refused(rejection: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RateLimit(InnerApp().wsgi(), "1/minute", rejection=rejection)
    with pytest.raises(error, match=r"rules\[0\]\.rejection"):
        RateLimit(InnerApp().wsgi(), None, rules=[Rule("1/minute", rejection=rejection)])


def test_a_rejection_function_returning_garbage_is_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def garbage(head: RequestHead, decision: LimitDecision) -> Any:
        return "nope"

    mw = RateLimit(InnerApp().wsgi(), "1/minute", rejection=garbage, clock=FakeClock())
    call_wsgi(mw, Request())
    assert call_wsgi(mw, Request()).status == 500
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert "not a bridge.middleware.Response" in str(record.exc_info[1])


def test_concurrency_rejection_is_one_warning_with_extra_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ratelimit")
    store = MemoryStore()
    mw = ConcurrencyLimit(InnerApp().wsgi(), 1, store=store, name="uploads")
    assert store.acquire("uploads|conn|1|127.0.0.1", 1, "held-elsewhere", 0.0)
    assert call_wsgi(mw, Request(path="/upload")).status == 503
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "rejected GET /upload" in record.getMessage()
    fields = {k: v for k, v in record.__dict__.items() if k.startswith("ratelimit_")}
    assert fields == {
        "ratelimit_rule": "uploads",
        "ratelimit_key": "127.0.0.1",
        "ratelimit_client": "127.0.0.1",
        "ratelimit_policy": "1 in flight",
        "ratelimit_result": "rejected",
    }
    quiet = ConcurrencyLimit(InnerApp().wsgi(), 1, store=store, name="uploads", log_level=None)
    caplog.clear()
    assert call_wsgi(quiet, Request(path="/upload")).status == 503
    assert caplog.records == []
