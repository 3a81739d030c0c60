"""Each example in examples/ starts as its docstring says and answers a real request.

Every server listens on 127.0.0.1 on a free port; each test checks what the example
claims to show (the middleware's headers, the mounted app, lifespan, the ORM across
sync and async code), not only that something answered.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import PYTHON, ROOT, RunServer

pytestmark = pytest.mark.server

EXAMPLES = ROOT / "examples"
DJANGO_SITE = EXAMPLES / "django_site"


def test_flask_under_uvicorn_prints_next_steps_and_logs_requests(run_server: RunServer) -> None:
    running = run_server(
        lambda port: [PYTHON, "examples/flask_under_uvicorn.py", "--port", str(port)]
    )
    forwarded = httpx.get(f"{running.url}/", headers={"X-Forwarded-For": "203.0.113.7"})
    assert forwarded.json() == {"hello": "from Flask", "client": "203.0.113.7", "scheme": "http"}
    assert forwarded.headers["x-content-type-options"] == "nosniff"
    assert forwarded.headers["x-served-by"] == "bridge"
    assert "ratelimit" in forwarded.headers
    assert "server" not in forwarded.headers
    echoed = httpx.post(f"{running.url}/echo", content=b"x" * 100_000)
    assert echoed.content == b"x" * 100_000
    streamed = httpx.get(f"{running.url}/count")
    assert streamed.text == "".join(f"{n}\n" for n in range(1, 11))
    assert streamed.headers["content-length"] == str(len(streamed.text))  # ResponseBuffering
    too_big = httpx.post(f"{running.url}/echo", content=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413
    output = running.stop()
    assert f"curl -i {running.url}/" in output  # what to do next
    assert '"GET / HTTP/1.1" 200' in output  # uvicorn logs each request at info level


def test_fastapi_mounts_flask_behind_one_rate_limit(run_server: RunServer) -> None:
    running = run_server(
        lambda port: [PYTHON, "examples/fastapi_mounts_flask.py", "--port", str(port)]
    )
    with httpx.Client(base_url=running.url) as client:
        health = client.get("/api/health")
        assert health.json() == {"app": "fastapi", "status": "ok"}
        legacy = client.get("/legacy/")
        assert legacy.json() == {"app": "flask", "path": "/", "self": "/legacy/"}
        assert client.post("/legacy/orders", content=b"abc").json() == {"received": 3}
        # The bucket holds 11 (5/second, 10 more in a burst) and is shared by both apps:
        # requests sent back to back meet a 429 long before 200 of them.
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 200:
            statuses.append(client.get("/legacy/").status_code)
    assert health.headers["ratelimit-policy"] == '"5/second burst 10";q=11;w=3'
    assert "ratelimit" in legacy.headers
    assert 429 in statuses


def test_fastapi_under_gunicorn(run_server: RunServer) -> None:
    running = run_server(
        lambda port: [PYTHON, "examples/fastapi_under_gunicorn.py", "--port", str(port)]
    )
    index = httpx.get(f"{running.url}/")
    assert index.json() == {
        "hello": "from FastAPI",
        "server": ["127.0.0.1", running.port],
        "ready": True,  # set by the lifespan, before the first request
    }
    upload = httpx.post(f"{running.url}/upload", content=b"y" * 3_000_000)
    assert upload.json() == {"received": 3_000_000}
    assert httpx.get(f"{running.url}/stream").text == "".join(f"line {n}\n" for n in range(1, 6))
    assert "Booting worker" in running.stop()


def migrated_database(tmp_path: Path) -> dict[str, str]:
    """The environment of a Django server whose SQLite file ``manage.py migrate`` created."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXAMPLE_DB": str(tmp_path / "db.sqlite3")}
    subprocess.run(
        [PYTHON, "-W", "error", "manage.py", "migrate", "--run-syncdb"],
        cwd=DJANGO_SITE,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return {"EXAMPLE_DB": env["EXAMPLE_DB"]}


DJANGO_SERVERS = {
    "asgi-uvicorn": lambda port: [
        PYTHON, "-m", "uvicorn", "mysite.asgi:application", "--app-dir", str(DJANGO_SITE),
        "--host", "127.0.0.1", "--port", str(port),
    ],
    "wsgi-gunicorn": lambda port: [
        PYTHON, "-m", "gunicorn", "mysite.wsgi:application", "--chdir", str(DJANGO_SITE),
        "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", sorted(DJANGO_SERVERS))
def test_django_site_same_stack_under_asgi_and_wsgi(
    server: str, run_server: RunServer, tmp_path: Path
) -> None:
    env = migrated_database(tmp_path)
    running = run_server(DJANGO_SERVERS[server], env=env)
    with httpx.Client(base_url=running.url) as client:
        index = client.get("/", headers={"X-Forwarded-For": "198.51.100.9"})
        first = client.get("/async-visits")
        second = client.get("/async-visits")
        report = client.get("/sync-report")
    assert index.json()["client"] == "198.51.100.9"  # ProxyHeaders, in asgi.py and wsgi.py
    assert index.headers["x-content-type-options"] == "nosniff"  # SecurityHeaders
    assert index.headers["ratelimit-policy"] == '"20/second burst 40";q=41;w=3'
    # async view -> ORM through sync_to_async; sync view -> async code through async_to_sync
    assert (first.json(), second.json()) == ({"visits": 1}, {"visits": 2})
    assert report.json() == {"prices": {"EUR": 1.0, "USD": 1.08}, "visits": 1}
