"""Route-level limits in real Flask, Django, FastAPI and Starlette apps behind real servers.

Each app (tests/ratelimit/route_*.py) declares the same limits its framework's way; each
is served on 127.0.0.1 by gunicorn (WSGI), uvicorn (ASGI on asyncio) or hypercorn (ASGI
on trio), with a MemoryStore and with a real redis-server, and answers the same
questions with the same bytes: the route's policy in ``RateLimit-Policy``, the
decision readable in the view, the middleware's 429 body and rejection templates,
computed per-plan limits and identity keys.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence

import httpx
import pytest

from tests.conftest import PYTHON, RunServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

HERE = "tests.ratelimit"


def gunicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PYTHON, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}",
        f"{HERE}.{target}",
    ]  # fmt: skip


def uvicorn(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PYTHON, "-m", "uvicorn", f"{HERE}.{target}", "--port", str(port),
        "--lifespan", "off", "--log-level", "warning",
    ]  # fmt: skip


def hypercorn_trio(target: str) -> Callable[[int], Sequence[str]]:
    return lambda port: [
        PYTHON, "-m", "hypercorn", "--worker-class", "trio", "--bind", f"127.0.0.1:{port}",
        f"{HERE}.{target}",
    ]  # fmt: skip


SERVERS = [
    pytest.param(gunicorn("route_flask:app"), id="flask-gunicorn"),
    pytest.param(gunicorn("route_django:wsgi_application"), id="django-wsgi-gunicorn"),
    pytest.param(uvicorn("route_django:asgi_application"), id="django-asgi-uvicorn"),
    pytest.param(uvicorn("route_fastapi:app"), id="fastapi-uvicorn"),
    pytest.param(hypercorn_trio("route_fastapi:app"), id="fastapi-hypercorn-trio"),
    pytest.param(uvicorn("route_starlette:app"), id="starlette-uvicorn"),
    pytest.param(hypercorn_trio("route_starlette:app"), id="starlette-hypercorn-trio"),
]

DJANGO = [param for param in SERVERS if "django" in str(param.id)]
TWO = '"2/minute";q=2;w=60'
RETRY_BODY = re.compile(r"Too Many Requests: retry in (\d+) seconds\.\n")


def check_route(client: httpx.Client, path: str) -> None:
    first, second, third = (client.get(path) for _ in range(3))
    assert (first.status_code, first.text) == (200, "left 1")
    assert (second.status_code, second.text) == (200, "left 0")
    assert first.headers["ratelimit-policy"] == TWO
    assert first.headers["ratelimit"].startswith('"2/minute";r=1;t=')
    assert third.status_code == 429
    match = RETRY_BODY.fullmatch(third.text)
    assert match is not None, third.text
    assert third.headers["retry-after"] == match.group(1)
    assert third.headers["ratelimit-policy"] == TWO
    assert third.headers["ratelimit"].startswith('"2/minute";r=0;t=')
    assert third.headers["content-type"] == "text/plain; charset=utf-8"
    assert third.headers["content-length"] == str(len(third.content))


def check_both(client: httpx.Client) -> None:
    """A route limit under a middleware rule: both policies, the route's first."""
    responses = [client.get("/both") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    policy = f'{TWO}, "50/minute";q=50;w=60'
    assert all(r.headers["ratelimit-policy"] == policy for r in responses)
    assert responses[1].headers["ratelimit"].startswith('"2/minute";r=0;t=')
    assert ', "50/minute";r=48;t=' in responses[1].headers["ratelimit"]
    # The rule admitted the third request (the route refused it): 3 of 50 used.
    assert ', "50/minute";r=47;t=' in responses[2].headers["ratelimit"]


def check_plans(client: httpx.Client) -> None:
    free = [client.get("/plan", headers={"x-api-key": "free-key"}) for _ in range(3)]
    assert [r.status_code for r in free] == [200, 200, 429]
    assert free[0].headers["ratelimit-policy"] == TWO
    pro = [client.get("/plan", headers={"x-api-key": "pro-key"}) for _ in range(5)]
    assert [r.status_code for r in pro] == [200, 200, 200, 200, 429]
    assert pro[0].headers["ratelimit-policy"] == '"4/minute";q=4;w=60'
    assert pro[0].text == "left 3"
    anonymous = client.get("/plan")  # no record: the limit function says None
    assert (anonymous.status_code, anonymous.text) == (200, "unlimited")
    assert "ratelimit" not in anonymous.headers


def check_users(client: httpx.Client) -> None:
    alice = [client.get("/user", headers={"x-user": "alice"}) for _ in range(2)]
    assert [r.status_code for r in alice] == [200, 429]
    bob = client.get("/user", headers={"x-user": "bob"})  # a bucket of his own
    assert (bob.status_code, bob.text) == (200, "left 0")
    anonymous = client.get("/user")  # keyed by the address instead
    assert anonymous.status_code == 200


def check_custom(client: httpx.Client) -> None:
    assert client.get("/custom").status_code == 200
    refused = client.get("/custom")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    body = json.loads(refused.content)
    assert body == {
        "error": "slow down",
        "retry_after": int(refused.headers["retry-after"]),
        "policy": "1/minute",
    }


def run_all(client: httpx.Client) -> None:
    check_route(client, "/login")
    check_route(client, "/other")
    check_both(client)
    check_plans(client)
    check_users(client)
    check_custom(client)
    free = client.get("/free")
    assert (free.status_code, free.text) == (200, "free")
    assert "ratelimit" not in free.headers


@pytest.mark.parametrize("argv", SERVERS)
def test_route_limits_memory_store(
    run_server: RunServer, argv: Callable[[int], Sequence[str]]
) -> None:
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        run_all(client)


@pytest.mark.parametrize("argv", DJANGO)
def test_django_class_based_view(
    run_server: RunServer, argv: Callable[[int], Sequence[str]]
) -> None:
    """``method_decorator(limit(...))`` on a class-based view's sync and async methods."""
    server = run_server(argv)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        gets = [client.get("/report") for _ in range(2)]
        assert [r.status_code for r in gets] == [200, 429]
        assert gets[0].text == "left 0"
        assert gets[0].headers["ratelimit-policy"] == '"1/minute";q=1;w=60'
        async_gets = [client.get("/async-report") for _ in range(2)]
        assert [r.status_code for r in async_gets] == [200, 429]
        assert async_gets[1].headers["ratelimit"].startswith('"1/minute";r=0;t=')


@pytest.mark.redis
@pytest.mark.parametrize("argv", SERVERS)
def test_route_limits_redis_store(
    run_server: RunServer, argv: Callable[[int], Sequence[str]], redis_url: str
) -> None:
    env = {"RL_REDIS_URL": redis_url, "RL_PREFIX": f"route:{uuid.uuid4().hex}:"}
    server = run_server(argv, env=env)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        run_all(client)
