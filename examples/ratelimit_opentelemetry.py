"""RateLimit decisions counted with OpenTelemetry (``pip install 'wsgi-asgi-bridge[otel]'``).

A FastAPI app behind ``RateLimit``; its ``on_decision`` hook adds each decision to the
``bridge.ratelimit.decisions`` counter of OpenTelemetry's metrics API, with the rule and
the result as attributes. The API alone records nothing: configure the SDK and an exporter
(here, with ``opentelemetry-sdk`` installed, the console every 5 seconds). Run it from the
repository root::

    python examples/ratelimit_opentelemetry.py            # http://127.0.0.1:8000
    python examples/ratelimit_opentelemetry.py --port 9000

then send a few requests: ``curl -i http://127.0.0.1:8000/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fastapi import FastAPI
from opentelemetry import metrics

from bridge import RateLimit
from bridge.ratelimit import LimitDecision


def decision_counter(meter: metrics.Meter) -> Callable[[LimitDecision], None]:
    """An ``on_decision`` hook adding 1 per decision, by rule and result (never by key)."""
    decisions = meter.create_counter(
        "bridge.ratelimit.decisions", unit="{decision}", description="Rate-limit decisions"
    )

    def on_decision(decision: LimitDecision) -> None:
        decisions.add(1, {"rule": decision.rule, "result": decision.result})

    return on_decision


def create_app(meter: metrics.Meter) -> FastAPI:
    api = FastAPI()

    @api.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    api.add_middleware(RateLimit, limit="5/minute", on_decision=decision_counter(meter))
    return api


def main() -> None:
    import uvicorn
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=5000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    app = create_app(metrics.get_meter("ratelimit-example"))
    uvicorn.run(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
