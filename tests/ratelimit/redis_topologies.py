"""A real Redis Cluster (3 masters) and a real Sentinel setup on loopback, for the tests.

Each process runs from its own temporary directory on free loopback ports and is always
stopped. Outside CI a missing binary skips the test; in CI (``CI=true``) it fails, because
.ci/run installs redis-server, redis-tools and redis-sentinel.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port, wait_for_port

#: Seconds the fixtures wait for a cluster or a failover to settle before giving up.
SETTLE = 30.0


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package})"
        if IN_CI:  # .ci/run installs it: never skip silently there
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(condition: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def cli(port: int, *args: str) -> str:
    """``redis-cli -p port args`` on loopback; its output, or "" when the server is down."""
    argv = [require_binary("redis-cli", "redis-tools"), "-h", "127.0.0.1", "-p", str(port), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return done.stdout


class Node:
    """One redis-server (or sentinel) with its own directory; ``stop()`` and ``start()`` again."""

    def __init__(self, argv: list[str], directory: Path, port: int) -> None:
        self.argv = argv
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def server_node(directory: Path, *extra: str) -> Node:
    binary = require_binary("redis-server", "redis-server")
    directory.mkdir()
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return Node([*argv, *extra], directory, port)


class Cluster:
    """Three masters, no replicas; slots assigned by ``redis-cli --cluster create``."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes) + "/"

    def healthy(self) -> bool:
        return all("cluster_state:ok" in cli(n.port, "cluster", "info") for n in self.nodes)

    def node_for(self, key: str) -> Node:
        """The master that owns ``key``'s slot."""
        slot = int(cli(self.nodes[0].port, "cluster", "keyslot", key))
        for line in cli(self.nodes[0].port, "cluster", "nodes").splitlines():
            fields = line.split()
            port = int(fields[1].split(":")[1].split("@")[0])
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node owns slot {slot}")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-master Redis Cluster on loopback for the whole session."""
    require_binary("redis-cli", "redis-tools")
    root = tmp_path_factory.mktemp("cluster")
    nodes = []
    for i in range(3):
        bus = free_port()
        nodes.append(
            server_node(
                root / f"node{i}",
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-port", str(bus), "--cluster-node-timeout", "1000"),
            )
        )
    cluster = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        cli(nodes[0].port, "--cluster", "create", *addresses, "--cluster-yes")
        wait_for(cluster.healthy, "cluster_state:ok on every node")
        yield cluster
    finally:
        for node in nodes:
            node.stop()


class Sentinel:
    """A master, one replica and one sentinel watching them as ``SERVICE``."""

    SERVICE = "bridge-test"

    def __init__(self, master: Node, replica: Node, sentinel: Node) -> None:
        self.master, self.replica, self.sentinel = master, replica, sentinel
        self.url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{self.SERVICE}"

    def master_port(self) -> int | None:
        out = cli(self.sentinel.port, "sentinel", "get-master-addr-by-name", self.SERVICE).split()
        return int(out[1]) if len(out) == 2 else None

    def knows_replica(self) -> bool:
        return str(self.replica.port) in cli(
            self.sentinel.port, "sentinel", "replicas", self.SERVICE
        )


def sentinel_setup(root: Path) -> Sentinel:
    """The three processes' commands and directories under ``root``, none started yet."""
    sentinel_binary = require_binary("redis-sentinel", "redis-sentinel")
    master = server_node(root / "master", "--repl-diskless-sync-delay", "0")
    replica = server_node(root / "replica", "--replicaof", "127.0.0.1", str(master.port))
    (root / "sentinel").mkdir()
    port = free_port()
    config = root / "sentinel" / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {root / 'sentinel'}\n"
        f"sentinel monitor {Sentinel.SERVICE} 127.0.0.1 {master.port} 1\n"
        f"sentinel down-after-milliseconds {Sentinel.SERVICE} 500\n"
        f"sentinel failover-timeout {Sentinel.SERVICE} 3000\n"
    )
    return Sentinel(master, replica, Node([sentinel_binary, str(config)], config.parent, port))


@contextlib.contextmanager
def running(setup: Sentinel) -> Iterator[Sentinel]:
    """Start master, replica (in sync) and sentinel (aware of both); always stop all three."""
    try:
        setup.master.start()
        setup.replica.start()
        wait_for(
            lambda: "master_link_status:up" in cli(setup.replica.port, "info", "replication"),
            "the replica's sync with its master",
        )
        setup.sentinel.start()
        wait_for(setup.knows_replica, "the sentinel's discovery of the replica")
        yield setup
    finally:
        for node in (setup.sentinel, setup.replica, setup.master):
            node.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinel]:
    """A sentinel-managed master and replica for the whole session (never failed over)."""
    with running(sentinel_setup(tmp_path_factory.mktemp("sentinel"))) as setup:
        yield setup


@pytest.fixture
def own_sentinel(tmp_path: Path) -> Iterator[Sentinel]:
    """A sentinel setup this test may fail over; always stopped afterwards."""
    with running(sentinel_setup(tmp_path)) as setup:
        yield setup
