"""The request id in each server's access log, configured as docs/middleware/request-id.md
shows: uvicorn through ``RequestIdFilter`` on its access handler (uvicorn writes the line
while the response starts, inside the request's context), gunicorn and hypercorn through
their response-header atom ``%({x-request-id}o)s`` (they write the line after the app is
done, when the id's context has ended)."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn.config

from tests.conftest import RunServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

PY = sys.executable
APPS = "tests.middleware.apps.request_id_apps"
#: The access-log format of the docs (gunicorn's and hypercorn's atoms).
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s request_id=%({x-request-id}o)s'


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with the docs' two changes."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": "bridge.RequestIdFilter"}}
    config["handlers"]["access"]["filters"] = ["request_id"]
    config["formatters"]["access"]["fmt"] = (
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s '
        "request_id=%(request_id)s"
    )
    return config


def _uvicorn(tmp_path: Path) -> Callable[[int], Sequence[str]]:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(uvicorn_log_config()))
    return lambda port: [
        PY, "-m", "uvicorn", f"{APPS}:starlette_app", "--port", str(port),
        "--log-config", str(path),
    ]  # fmt: skip


def _gunicorn(tmp_path: Path) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
        "--access-logformat", ACCESS_FORMAT, f"{APPS}:flask_app",
    ]  # fmt: skip


def _hypercorn(tmp_path: Path) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PY, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
        "--access-logformat", ACCESS_FORMAT, f"{APPS}:starlette_app",
    ]  # fmt: skip


@pytest.mark.parametrize("server", [_uvicorn, _gunicorn, _hypercorn])
def test_each_access_line_carries_its_responses_id(
    run_server: RunServer, tmp_path: Path, server: Callable[[Path], Any]
) -> None:
    app = run_server(server(tmp_path))
    with httpx.Client(base_url=app.url, timeout=10) as client:
        ids = [client.get("/").headers["x-request-id"] for _ in range(3)]
    assert len(set(ids)) == 3
    output = app.stop()
    access_lines = [line for line in output.splitlines() if '"GET / ' in line]
    assert [line.rsplit("request_id=", 1)[-1].strip() for line in access_lines] == ids, output
