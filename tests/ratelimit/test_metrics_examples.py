"""The metrics examples: on_decision wired to prometheus-client and to OpenTelemetry."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bridge.testing import Request, call_asgi, call_wsgi
from tests.conftest import PYTHON, RunServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheus_counts_decisions_by_rule_and_result() -> None:
    example = load("ratelimit_prometheus")
    registry = CollectorRegistry()
    app = example.create_app(registry)
    statuses = [call_wsgi(app, Request()).status for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    logins = [call_wsgi(app, Request(method="POST", path="/login")).status for _ in range(4)]
    assert logins == [401, 401, 401, 429]

    def count(rule: str, result: str) -> float | None:
        labels = {"rule": rule, "result": result}
        return registry.get_sample_value("bridge_ratelimit_decisions_total", labels)

    assert count("default", "allowed") == 5
    assert count("default", "rejected") == 2
    assert count("login", "allowed") == 3
    assert count("login", "rejected") == 1
    # /metrics serves them, and is neither limited nor counted.
    for _ in range(3):
        scraped = call_wsgi(app, Request(path="/metrics"))
        assert scraped.status == 200
    text = scraped.body.decode()
    assert 'bridge_ratelimit_decisions_total{result="rejected",rule="default"} 2.0' in text
    assert count("default", "allowed") == 5


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_opentelemetry_counts_decisions_by_rule_and_result(backend: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    example = load("ratelimit_opentelemetry")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = example.create_app(provider.get_meter("test"))
    statuses = [call_asgi(app, Request(), backend=backend).status for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "bridge.ratelimit.decisions"
    ]
    counts = {}
    for point in metric.data.data_points:
        assert isinstance(point, NumberDataPoint)
        assert point.attributes is not None
        counts[point.attributes["rule"], point.attributes["result"]] = point.value
    assert counts == {("default", "allowed"): 5, ("default", "rejected"): 1}
    provider.shutdown()


@pytest.mark.server
def test_the_prometheus_example_runs_as_a_server(run_server: RunServer) -> None:
    running = run_server(
        lambda port: [PYTHON, "examples/ratelimit_prometheus.py", "--port", str(port)]
    )
    for _ in range(6):
        last = httpx.get(f"{running.url}/")
    assert last.status_code == 429
    assert 'rule="default"} 1.0' in httpx.get(f"{running.url}/metrics").text
    running.stop()
