"""A real Django 5.2 app (SQLite) crossing the sync/async boundary with bridge, under load.

* under uvicorn (ASGI): an async view using the ORM through ``bridge.sync_to_async``, and a
  sync view calling async code through ``bridge.async_to_sync`` (that code calls the ORM
  back through ``bridge.sync_to_async``, which must return to the view's own thread);
* under waitress (WSGI, plain threads): the same sync view, whose async code then runs on
  bridge's persistent background loop.

Load is bounded: 16 client threads, 96 requests per view.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, RunServer

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(120)]

REQUESTS = 96
CLIENTS = 16


@pytest.fixture
def django_env(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite database with the app's table, and the environment pointing at it."""
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.sync_django.settings",
        "BRIDGE_DJANGO_DB": str(tmp_path / "db.sqlite3"),
    }
    subprocess.run(
        [PYTHON, "-m", "django", "migrate", "--run-syncdb", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        check=True,
        timeout=60,
    )
    return env


def uvicorn(port: int) -> Sequence[str]:
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "tests.sync_django.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def waitress(port: int) -> Sequence[str]:
    return [
        PYTHON,
        "-m",
        "waitress",
        "--host=127.0.0.1",
        f"--port={port}",
        "--threads=8",
        "tests.sync_django.wsgi:application",
    ]


def load(base_url: str, paths: list[str]) -> list[dict[str, Any]]:
    """GET every path with CLIENTS concurrent clients; every answer must be a 200 JSON."""

    def fetch(client: httpx.Client, path: str) -> dict[str, Any]:
        response = client.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    with (
        httpx.Client(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=CLIENTS)
        ) as client,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        return list(pool.map(lambda path: fetch(client, path), paths))


def check_sync_view(results: list[dict[str, Any]]) -> None:
    assert [body["doubled"] for body in results] == [2 * n for n in range(REQUESTS)]
    assert all(body["count"] == 1 for body in results)
    assert all(body["same_thread"] for body in results)


@pytest.mark.parametrize(
    ("server", "views"),
    [
        pytest.param(uvicorn, ("async", "sync"), id="uvicorn"),
        pytest.param(waitress, ("sync",), id="waitress"),
    ],
)
def test_django_views_cross_the_boundary_correctly_under_load(
    run_server: RunServer,
    django_env: dict[str, str],
    server: Callable[[int], Sequence[str]],
    views: tuple[str, ...],
) -> None:
    base_url = run_server(server, env=django_env).url
    if "async" in views:
        results = load(base_url, [f"/async?name=item{n}" for n in range(REQUESTS)])
        assert [body["name"] for body in results] == [f"item{n}" for n in range(REQUESTS)]
        assert len({body["id"] for body in results}) == REQUESTS
        assert all(body["count"] == 1 for body in results)
        assert all(body["same_thread"] for body in results)
    if "sync" in views:
        check_sync_view(load(base_url, [f"/sync?n={n}" for n in range(REQUESTS)]))
