"""The process' Redis client: one Redis server, or a Redis Cluster — chosen by the URL.

* ``redis://host:port/0`` (``rediss://`` with TLS): one server (``redis.asyncio.Redis``);
* ``redis+cluster://host:port`` (``rediss+cluster://``): a Redis Cluster
  (``redis.asyncio.cluster.RedisCluster``); the node named is only the first one asked,
  the client learns the others and the slot map from it (docs/reliability.md
  "Redis Cluster").

Everything that touches several keys in one command, one Lua script or one MULTI keeps
them in one cluster slot with a hash tag: :func:`tag` (``"{...}"``; Redis hashes only what
is between the first ``{`` and the next ``}``). On a single server a tag is just part of
the name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = ["CLUSTER_SCHEMES", "connect", "is_cluster", "is_cluster_url", "mget", "tag"]

# cluster scheme → the plain scheme redis-py parses
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# per node: RedisCluster raises MaxConnectionsError (it does not wait) when a node's pool
# is exhausted, so leave room for a burst of concurrent requests
CLUSTER_MAX_CONNECTIONS_PER_NODE = 1000


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_cluster_url(url: str) -> bool:
    return _scheme(url) in CLUSTER_SCHEMES


def connect(url: str, **kwargs: Any) -> Any:
    """A ``Redis`` or, for a ``redis+cluster://`` URL, a ``RedisCluster`` client; keyword
    arguments go to the connections (timeouts, retry, health checks)."""
    if is_cluster_url(url):
        from redis.asyncio.cluster import RedisCluster

        plain = CLUSTER_SCHEMES[_scheme(url)] + url[url.index("://") :]
        kwargs.setdefault("max_connections", CLUSTER_MAX_CONNECTIONS_PER_NODE)
        return RedisCluster.from_url(plain, **kwargs)
    from redis.asyncio import Redis

    return Redis.from_url(url, **kwargs)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster (no single connection pool)."""
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def tag(value: object) -> str:
    """``{value}``: every key built with the same tag lands in the same cluster slot."""
    text = str(value)
    if "{" in text or "}" in text:  # a brace would end (or start) the tag early
        text = hashlib.sha256(text.encode()).hexdigest()[:32]
    return "{" + text + "}"


async def mget(client: Any, keys: Sequence[str]) -> list[Any]:
    """The values of ``keys`` (None where missing), wherever they live: one MGET on one
    server; on a cluster one MGET per slot (``mget_nonatomic``) — not one snapshot, so
    only for keys read independently of each other."""
    if not keys:
        return []
    if is_cluster(client):
        return list(await client.mget_nonatomic(list(keys)))
    return list(await client.mget(list(keys)))
