"""redis-py clients for RedisStore, built from a URL: one server, a Cluster, or Sentinel.

URLs (``user:password@`` optional everywhere)::

    redis://host:port/db   rediss://...   unix:///path/to/socket?db=0
    redis+cluster://host:port[,host:port...]/            any nodes of the cluster
    redis+sentinel://host:port[,host:port...]/service[/db]   the sentinels, the service name

The same spellings as the ``limits`` library's storage URLs. Every client is built with
the store's timeouts and a connection pool of at most ``max_connections`` connections (per
cluster node); the store itself never runs more commands at once than that, so the pool
never grows beyond it and never refuses. ``drop_idle`` closes the pooled connections no
request is using, which is what to do when the server behind them has changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = (
    "AsyncClient",
    "SyncClient",
    "Target",
    "aclose",
    "async_client",
    "close",
    "drop_idle",
    "drop_idle_async",
    "parse_target",
    "sync_client",
)

SyncClient: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"
AsyncClient: TypeAlias = "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster"

_CLUSTER = "redis+cluster"
_SENTINEL = "redis+sentinel"


@dataclass(frozen=True, slots=True)
class Target:
    """Where Redis is: ``kind`` is ``"server"``, ``"cluster"`` or ``"sentinel"``."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """For log lines: never the password."""
        if self.kind == "server":
            return self.url.rpartition("@")[2]
        where = ",".join(f"{host}:{port}" for host, port in self.nodes)
        return f"cluster {where}" if self.kind == "cluster" else f"{self.service} via {where}"


def _nodes(netloc: str, url: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"Redis URL {url!r}: write each node as host:port, not {part!r}")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def parse_target(url: str) -> Target:
    """Read a RedisStore URL; raise ``ValueError`` naming what to fix."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Redis URL {url!r} has no scheme; write e.g. 'redis://host:6379/0'")
    if scheme not in (_CLUSTER, _SENTINEL):
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"Redis URL scheme {scheme!r} is not supported; use redis://, rediss://, "
                "unix://, redis+cluster:// or redis+sentinel://"
            )
        return Target("server", url)
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        credentials, _, netloc = netloc.rpartition("@")
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    nodes = _nodes(netloc, url)
    if scheme == _CLUSTER:
        if path.strip("/"):
            raise ValueError(f"Redis URL {url!r}: a cluster has only database 0; drop the path")
        return Target("cluster", url, nodes, username=username, password=password)
    service, _, db = path.strip("/").partition("/")
    if not service or not (db == "" or db.isdigit()):
        raise ValueError(
            f"Redis URL {url!r}: write redis+sentinel://host:port[,host:port]/service[/db]"
        )
    return Target("sentinel", url, nodes, service, int(db or 0), username, password)


def _common(options: dict[str, Any], max_connections: int) -> dict[str, Any]:
    return {**options, "max_connections": max_connections, "socket_keepalive": True}


def _auth(target: Target) -> dict[str, Any]:
    return {"username": target.username, "password": target.password}


# One immediate retry on a connection error, none on a timeout: a connection the server
# closed fails once, which is no outage; a timeout already cost its full wait.


def sync_client(target: Target, options: dict[str, Any], max_connections: int) -> SyncClient:
    kwargs = _common(options, max_connections)
    retry = redis.retry.Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    if target.kind == "server":
        return redis.Redis.from_url(target.url, retry=retry, **kwargs)
    auth = _auth(target)
    if target.kind == "cluster":
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
        return redis.cluster.RedisCluster(startup_nodes=nodes, retry=retry, **auth, **kwargs)
    sentinel = redis.sentinel.Sentinel(list(target.nodes), sentinel_kwargs=dict(options))
    client: redis.Redis = sentinel.master_for(
        target.service, db=target.db, retry=retry, **auth, **kwargs
    )
    return client


def async_client(target: Target, options: dict[str, Any], max_connections: int) -> AsyncClient:
    kwargs = _common(options, max_connections)
    retry = redis.asyncio.retry.Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    if target.kind == "server":
        return redis.asyncio.Redis.from_url(target.url, retry=retry, **kwargs)
    auth = _auth(target)
    if target.kind == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.nodes]
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, retry=retry, **auth, **kwargs
        )
    sentinel = redis.asyncio.sentinel.Sentinel(list(target.nodes), sentinel_kwargs=dict(options))
    client: redis.asyncio.Redis = sentinel.master_for(
        target.service, db=target.db, retry=retry, **auth, **kwargs
    )
    return client


def drop_idle(client: SyncClient) -> None:
    """Close every pooled connection no request is using (they reconnect when next used)."""
    if isinstance(client, redis.cluster.RedisCluster):
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect(inuse_connections=False)
    else:
        client.connection_pool.disconnect(inuse_connections=False)


async def drop_idle_async(client: AsyncClient) -> None:
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        for node in client.get_nodes():
            await node.disconnect_free_connections()
    else:
        await client.connection_pool.disconnect(inuse_connections=False)


def close(client: SyncClient) -> None:
    """Close every connection ``client`` holds, its Sentinel's included (a client that
    ``master_for`` built does not close the pool it was given)."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            sentinel.close()


async def aclose(client: AsyncClient) -> None:
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        await pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await sentinel.aclose()
