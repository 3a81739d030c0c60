"""``Middleware.decide_request``: the exchange-free path, the same under WSGI and ASGI."""

from __future__ import annotations

import logging

import pytest

from bridge.middleware import Exchange, Forward, Middleware, RequestHead, Response
from bridge.middleware._core.heads import head_from_scope
from bridge.testing import InnerApp, Request, call_asgi, call_wsgi


class Gate(Middleware):
    """Answers /deny, rewrites /rewrite to /rewritten, passes anything else through."""

    def decide_request(self, head: RequestHead, now: float) -> RequestHead | Response | None:
        if head.path == "/deny":
            return Response.text(403)
        if head.path == "/rewrite":
            return head.replace(path="/rewritten", raw_path=b"/rewritten")
        if head.path == "/bug":
            raise ZeroDivisionError("bug in decide_request()")
        return None


@pytest.mark.parametrize(
    ("path", "status", "app_path"),
    [
        pytest.param("/", 200, "/", id="pass-through"),
        pytest.param("/rewrite", 200, "/rewritten", id="rewritten"),
        pytest.param("/deny", 403, None, id="answered"),
        pytest.param("/bug", 500, None, id="a bug is a 500"),
    ],
)
def test_decide_request_under_both_interfaces(
    path: str, status: int, app_path: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    inner = InnerApp()
    request = Request(path=path, raw_path=path.encode())
    with caplog.at_level(logging.ERROR, logger="bridge.middleware"):
        wsgi = call_wsgi(Gate(inner.wsgi()), request)
        asgi = call_asgi(Gate(inner.asgi()), request)
        trio = call_asgi(Gate(inner.asgi()), request, backend="trio")
    assert wsgi == asgi == trio
    assert wsgi.status == status
    assert (wsgi.seen.head.path if wsgi.seen else None) == app_path
    assert len(caplog.records) == (3 if status == 500 else 0)


def test_exchange_wraps_decide_request() -> None:
    gate = Gate(InnerApp().wsgi())
    ex = gate.exchange(head_from_scope(Request(path="/rewrite").scope()), 0.0)
    assert isinstance(ex, Exchange)
    decision = ex.request()
    assert isinstance(decision, Forward)
    assert decision.head.path == "/rewritten"
    assert gate.exchange(head_from_scope(Request().scope()), 0.0) is None


def test_a_subclass_overriding_exchange_runs_its_exchange() -> None:
    class Counting(Gate):
        def exchange(self, head: RequestHead, now: float) -> Exchange | None:
            return Exchange(head, now)  # forwards everything untouched

    inner = InnerApp()
    assert call_wsgi(Counting(inner.wsgi()), Request(path="/deny")).status == 200
    assert call_asgi(Counting(inner.asgi()), Request(path="/deny")).status == 200
