"""How every service's Redis client is built: a pool that queues callers when it is full, connected
straight to a URL or, with Sentinel, to whichever server Sentinel names as the master.

With Sentinel each new connection asks a sentinel for the master's address. A failover breaks the
connections to the old primary (their commands fail with a connection error: REDIS_DOWN, which the
services answer 503 + Retry-After or retry in their loops); the next connection reaches the
promoted replica, so no service needs a restart. A connection still open to a demoted primary gets
READONLY on a write, which redis-py turns into a connection error and a reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from cloudbank.platform.config import Config, sentinel_address

# A reply may take this long. It must exceed the longest blocking read (the events pump's 5 s XREAD):
# redis-py 8 defaults to 5 s, so under load a reply landing just after the block ended raised
# TimeoutError and dropped every client's event socket.
SOCKET_TIMEOUT_S = 30.0
# A sentinel answers from memory: one that has not answered in this long is skipped for the next.
SENTINEL_TIMEOUT_S = 2.0
DEFAULT_MASTER = "cloudbank"


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool (a new connection asks Sentinel for the master) with
    BlockingConnectionPool's queueing: its own pool would refuse the 1001st caller at once."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.sentinel_manager.aclose()  # the clients it asks the sentinels with


def redis_client(url: str | None, max_connections: int = 1000, *, sentinels: Sequence[str] = (),
                 master: str = DEFAULT_MASTER, socket_timeout: float = SOCKET_TIMEOUT_S) -> Redis:
    """A client whose pool queues callers when it is full (up to 20 s) instead of failing at once:
    every open events WebSocket holds one connection in a blocking XREAD. With `sentinels`
    (host:port each) it follows the master named `master` and `url` is not used."""
    options: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 5,
                               "socket_timeout": socket_timeout, "health_check_interval": 30,
                               "max_connections": max_connections, "timeout": 20}
    if sentinels:
        manager = Sentinel([sentinel_address(s) for s in sentinels],  # type: ignore[no-untyped-call]
                           sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S,
                                            "socket_connect_timeout": SENTINEL_TIMEOUT_S})
        client: Redis = manager.master_for(master, connection_pool_class=BlockingSentinelPool, **options)
        return client  # the client owns the pool, the pool the sentinel clients: aclose() closes all
    if url is None:
        raise ValueError("a Redis URL or sentinels are needed")
    pool = BlockingConnectionPool.from_url(url, **options)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it


def redis_for(config: Config, max_connections: int = 1000, socket_timeout: float = SOCKET_TIMEOUT_S) -> Redis:
    """The configured Redis (URL or Sentinel): what every service, check and command connects with."""
    if config.redis_embedded:
        raise RuntimeError("the Redis URL must be resolved at the edge (cloudbank up starts the embedded one)")
    return redis_client(config.redis_url, max_connections, sentinels=config.redis_sentinels,
                        master=config.redis_master, socket_timeout=socket_timeout)
