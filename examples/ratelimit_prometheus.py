"""RateLimit decisions counted in Prometheus (``pip install 'wsgi-asgi-bridge[prometheus]'``).

A Flask app behind ``RateLimit``; its ``on_decision`` hook counts every decision in
``bridge_ratelimit_decisions_total{rule, result}`` and ``/metrics`` serves the counts.
Run it from the repository root::

    python examples/ratelimit_prometheus.py            # http://127.0.0.1:8000
    python examples/ratelimit_prometheus.py --port 9000

then ``for i in $(seq 8); do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:8000/; done``
and ``curl http://127.0.0.1:8000/metrics``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bridge import RateLimit
from bridge.ratelimit import LimitDecision, Rule


def decision_counter(registry: CollectorRegistry) -> Callable[[LimitDecision], None]:
    """An ``on_decision`` hook counting decisions by rule and result.

    The key is not a label: one time series per client would grow without bound.
    """
    decisions = Counter(
        "bridge_ratelimit_decisions",
        "Rate-limit decisions by rule and result",
        ("rule", "result"),
        registry=registry,
    )

    def on_decision(decision: LimitDecision) -> None:
        decisions.labels(decision.rule, decision.result).inc()

    return on_decision


def create_app(registry: CollectorRegistry) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        return "hello\n"

    @app.post("/login")
    def login() -> tuple[str, int]:
        return "wrong password\n", 401

    app.wsgi_app = RateLimit(  # type: ignore[method-assign]
        app.wsgi_app,
        "5/minute",
        rules=[Rule("3/minute", path="=/login", methods="POST", name="login")],
        on_decision=decision_counter(registry),
    )
    # /metrics is outside the limiter: scrapes are never limited nor counted.
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/metrics": make_wsgi_app(registry)}
    )
    return app


def main() -> None:
    from wsgiref.simple_server import make_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    app = create_app(CollectorRegistry())
    print(f"http://127.0.0.1:{port}/  (counts at http://127.0.0.1:{port}/metrics)", flush=True)
    make_server("127.0.0.1", port, app).serve_forever()


if __name__ == "__main__":
    main()
