"""Several worker processes share one limit through a real Redis (gunicorn, uvicorn)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import PYTHON, RunServer, Server

from .redis_process import RedisProcess, own_redis

__all__ = ("own_redis",)

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.slow]

SERVERS: dict[str, Callable[[int], Sequence[str]]] = {
    "gunicorn-4-workers": lambda port: [
        PYTHON, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{port}",
        "tests.ratelimit.server_apps:wsgi_app",
    ],
    "uvicorn-4-workers": lambda port: [
        PYTHON, "-m", "uvicorn", "--workers", "4", "--port", str(port), "--lifespan", "off",
        "--no-access-log", "tests.ratelimit.server_apps:asgi_app",
    ],
    # trio: RedisStore runs the blocking client in a worker thread.
    "hypercorn-trio-2-workers": lambda port: [
        PYTHON, "-m", "hypercorn", "--worker-class", "trio", "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "tests.ratelimit.server_apps:asgi_app",
    ],
}  # fmt: skip


def statuses(server: Server, count: int) -> list[tuple[int, str]]:
    """``count`` requests, 8 at a time, each on a new connection (so any worker may answer)."""

    def one(_: int) -> tuple[int, str]:
        response = httpx.get(server.url + "/", timeout=10)
        return response.status_code, response.text

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", list(SERVERS))
def test_workers_share_one_limit(name: str, run_server: RunServer, redis_url: str) -> None:
    env = {
        "RL_REDIS_URL": redis_url,
        "RL_PREFIX": f"srv:{uuid.uuid4().hex}:",
        "RL_LIMIT": "10/hour",
    }
    server = run_server(SERVERS[name], env=env)
    results = statuses(server, 40)
    counts = Counter(status for status, _ in results)
    assert counts == {200: 10, 429: 30}, counts
    pids = {body for status, body in results if status == 200}
    print(f"{name}: 10 of 40 admitted, by {len(pids)} worker processes")


def wait_for_status(server: Server, wanted: int, attempts: int = 200) -> int:
    """Send requests until one gets ``wanted`` (bounded); return how many it took."""
    for attempt in range(1, attempts + 1):
        if httpx.get(server.url + "/", timeout=10).status_code == wanted:
            return attempt
    raise AssertionError(f"never got {wanted} in {attempts} requests")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", list(SERVERS))
def test_redis_killed_and_restarted_fail_closed(
    name: str, run_server: RunServer, own_redis: RedisProcess
) -> None:
    env = {
        "RL_REDIS_URL": own_redis.url,
        "RL_PREFIX": f"kill:{uuid.uuid4().hex}:",
        "RL_LIMIT": "1000/hour",
        "RL_FAILURE": "fail_closed",
    }
    server = run_server(SERVERS[name], env=env)
    assert {status for status, _ in statuses(server, 8)} == {200}
    own_redis.stop()
    down = statuses(server, 16)
    assert {status for status, _ in down} == {503}
    response = httpx.get(server.url + "/", timeout=10)
    assert response.headers["retry-after"] == "5"
    own_redis.start()
    wait_for_status(server, 200)
    # Every worker re-probes within its backoff (0.2 s at most): soon all answer 200.
    for _ in range(100):
        if {status for status, _ in statuses(server, 16)} == {200}:
            break
    else:
        raise AssertionError("not every worker recovered")
    output = server.stop()
    # One line per worker process that saw the outage, not one per request.
    assert 1 <= output.count("is unavailable") <= 4, output
    # A worker logs the recovery on its next request (one may have had none since).
    assert 1 <= output.count("is back after") <= output.count("is unavailable"), output


@pytest.mark.timeout(90)
def test_concurrency_limit_shared_by_workers(run_server: RunServer, redis_url: str) -> None:
    """One request in flight per client across 2 uvicorn workers: the second is refused."""
    import redis

    prefix = f"conc:{uuid.uuid4().hex}:"
    env = {"RL_REDIS_URL": redis_url, "RL_PREFIX": prefix}
    server = run_server(
        lambda port: [
            PYTHON, "-m", "uvicorn", "--workers", "2", "--port", str(port), "--lifespan", "off",
            "--no-access-log", "tests.ratelimit.server_apps:conc_asgi_app",
        ],
        env=env,
    )  # fmt: skip
    slots = f"{prefix}{{conn|conn|1|127.0.0.1}}:in-flight"
    client = redis.Redis.from_url(redis_url)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, server.url + "/slow", timeout=30)
        for _ in range(2000):  # until the slow request holds the slot
            if client.zcard(slots) == 1 or slow.done():
                break
            threading.Event().wait(0.005)
        refused = [httpx.get(server.url + "/", timeout=10) for _ in range(4)]
        client.rpush(prefix + "release", 1)
        assert slow.result().status_code == 200
    assert {r.status_code for r in refused} == {503}
    assert refused[0].headers["retry-after"] == "1"
    # The slot is given back in finish(), just after the response went out.
    for _ in range(2000):
        if client.zcard(slots) == 0:
            break
        threading.Event().wait(0.005)
    assert client.zcard(slots) == 0
    assert httpx.get(server.url + "/", timeout=10).status_code == 200
    client.close()
