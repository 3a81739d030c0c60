"""A middleware misconfigured through Starlette/FastAPI ``add_middleware()`` is built at the
first lifespan event, where uvicorn's default ``--lifespan auto`` hides the exception; bridge
logs it at ERROR so the user sees what to fix (docs/logging.md)."""

from __future__ import annotations

import logging

import httpx
import pytest

from bridge import TrustedHost
from bridge.testing import InnerApp
from tests.conftest import PYTHON, RunServer

MESSAGE = "www_redirect must be True or False, not 'yes'"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("app", ["starlette_app", "fastapi_app"])
def test_uvicorn_default_lifespan_shows_the_construction_error(
    run_server: RunServer, app: str
) -> None:
    server = run_server(
        lambda port: [
            PYTHON, "-m", "uvicorn", f"tests.apps.misconfigured:{app}", "--port", str(port),
        ]
    )  # fmt: skip
    response = httpx.get(server.url + "/")
    assert response.status_code == 500
    output = server.stop()
    assert "ASGI 'lifespan' protocol appears unsupported" in output  # what uvicorn says
    assert f"TrustedHost misconfigured: TypeError: {MESSAGE}" in output  # what bridge adds
    assert output.count("TrustedHost misconfigured") == 1  # once, not once per request


@pytest.mark.anyio
async def test_built_in_an_event_loop_it_is_logged_once(
    caplog: pytest.LogCaptureFixture, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    value = f"yes-{anyio_backend[0]}"  # once per process and message: one per backend here
    for _ in range(2):
        with pytest.raises(TypeError, match=f"not '{value}'"):
            TrustedHost(InnerApp().asgi(), www_redirect=value)  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if r.name.startswith("bridge")]
    assert record.levelno == logging.ERROR
    assert record.__dict__["bridge_middleware"] == "TrustedHost"
    assert record.__dict__["bridge_decision"] == "misconfigured"
    assert "--lifespan on" in record.getMessage()


def test_built_at_import_time_it_only_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    with pytest.raises(TypeError, match=MESSAGE):
        TrustedHost(InnerApp().wsgi(), www_redirect="yes")  # type: ignore[arg-type]
    assert [r for r in caplog.records if r.name.startswith("bridge")] == []
