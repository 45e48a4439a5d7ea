"""The video node registry in Redis (docs/protocol.md, "Video node registry").

Each node keeps `video:nodes[<id>]` = `{id, url, calls, cpu, draining, heartbeat_at}` and
`video:node:<id>:alive` (TTL 10 s) fresh every 3 s, plus `video:node:<id>:sessions`, the sessions
it holds. A node whose alive key expired is dropped by whichever process sweeps first (every live
video node sweeps on each heartbeat; the platform may call `sweep_dead_nodes` too): the one whose
HDEL succeeds appends `{type: "node.down", node, sessions}` to the `video:events` stream, which is
what the platform needs to re-place those sessions and tell their clients to rejoin.

Draining (SIGTERM, or `drain()`): the node says `draining: true`, takes no new calls and waits up
to a limit for its current calls to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform.service import REDIS_DOWN

log = logging.getLogger("cloudbank.video.registry")

NODES = "video:nodes"
EVENTS = "video:events"
EVENTS_MAXLEN = 10_000
HEARTBEAT_S = 3.0
ALIVE_TTL_S = 10
SESSIONS_TTL_S = 24 * 3600  # only a backstop: a sweep deletes the set of a dead node


def alive_key(node_id: str) -> str:
    return f"video:node:{node_id}:alive"


def sessions_key(node_id: str) -> str:
    return f"video:node:{node_id}:sessions"


async def sweep_dead_nodes(redis: Redis) -> list[str]:
    """Drop nodes that stopped heartbeating; publish `node.down` with their sessions. Returns their ids."""
    dropped: list[str] = []
    for raw_id in await redis.hkeys(NODES):
        node_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        if await redis.exists(alive_key(node_id)):
            continue
        sessions = sorted(await redis.smembers(sessions_key(node_id)))
        # Only the sweeper whose HDEL removes the entry publishes, so each death is told once.
        if await redis.hdel(NODES, node_id):
            await redis.delete(sessions_key(node_id))
            await redis.xadd(EVENTS, {"type": "node.down", "node": node_id, "sessions": json.dumps(sessions),
                                      "at": str(time.time())}, maxlen=EVENTS_MAXLEN, approximate=True)
            log.warning("video node %s stopped heartbeating; dropped with %d sessions", node_id, len(sessions))
            dropped.append(node_id)
    return dropped


class Registry:
    """This node's entry: heartbeat with load, sessions held, draining."""

    def __init__(self, redis: Redis, node_id: str, url: str, sessions: Callable[[], list[str]],
                 heartbeat_s: float = HEARTBEAT_S, alive_ttl_s: int = ALIVE_TTL_S) -> None:
        self.redis = redis
        self.node_id = node_id
        self.url = url
        self.sessions = sessions
        self.heartbeat_s = heartbeat_s
        self.alive_ttl_s = alive_ttl_s
        self.draining = False
        self.cpu = 0.0
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._wake = asyncio.Event()
        self._stopping = False

    def _measure_cpu(self) -> float:
        """CPU of this process since the last heartbeat, in percent of one core."""
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_mark
        if wall - last_wall >= 0.5:
            self.cpu = round(100.0 * (cpu - last_cpu) / (wall - last_wall), 1)
            self._cpu_mark = (wall, cpu)
        return self.cpu

    def entry(self) -> dict[str, object]:
        return {"id": self.node_id, "url": self.url, "calls": len(self.sessions()), "cpu": self._measure_cpu(),
                "draining": self.draining, "heartbeat_at": time.time()}

    async def heartbeat(self) -> None:
        sessions = self.sessions()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(NODES, self.node_id, json.dumps(self.entry()))
            pipe.set(alive_key(self.node_id), "1", ex=self.alive_ttl_s)
            pipe.delete(sessions_key(self.node_id))
            if sessions:
                pipe.sadd(sessions_key(self.node_id), *sessions)
                pipe.expire(sessions_key(self.node_id), SESSIONS_TTL_S)
            await pipe.execute()

    def changed(self) -> None:
        """A call started or ended: heartbeat now so placement sees the new load."""
        self._wake.set()

    async def run(self) -> None:
        """Heartbeat (and sweep dead nodes) until `stop()`; a Redis hiccup is logged, not fatal.

        Not cancelled mid-command: a redis-py command cut off half way can leave its connection
        waiting forever, so `stop()` lets the current beat finish first.
        """
        while not self._stopping:
            try:
                await asyncio.wait_for(self._beat_and_sweep(), self.heartbeat_s * 2)
            except (*REDIS_DOWN, TimeoutError) as exc:
                log.warning("video node %s: heartbeat paused, Redis unavailable (%s)", self.node_id,
                            type(exc).__name__)
            except Exception:  # noqa: BLE001 - keep beating; Redis may come back
                log.exception("video node %s: heartbeat failed", self.node_id)
            self._wake.clear()
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.heartbeat_s)

    async def _beat_and_sweep(self) -> None:
        await self.heartbeat()
        await sweep_dead_nodes(self.redis)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def drain(self, limit_s: float) -> int:
        """Take no new calls; wait up to `limit_s` for the current ones to end. Returns calls left."""
        self.draining = True
        with contextlib.suppress(Exception):
            await self.heartbeat()
        deadline = time.monotonic() + limit_s
        # Polled: rooms end from many places, and a fifth of a second is precise enough here.
        while self.sessions() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        left = len(self.sessions())
        if left:
            log.warning("video node %s: %d calls still running after draining %.0f s", self.node_id, left, limit_s)
        return left

    async def deregister(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(NODES, self.node_id)
            pipe.delete(alive_key(self.node_id), sessions_key(self.node_id))
            await pipe.execute()


REGISTRY = web.AppKey("video_registry", Registry)
NODE_ID = web.AppKey("video_node_id", str)
