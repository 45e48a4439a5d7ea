"""The video node registry in real Redis: heartbeat with load, sessions held, dead nodes swept
once with a `node.down` event, draining (no new calls, current ones may rejoin), deregistering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio
from aiohttp.test_utils import TestClient

from cloudbank.platform.config import Config
from cloudbank.platform.service import ENGINE
from cloudbank.video.app import create_app
from cloudbank.video.registry import (
    EVENTS,
    NODES,
    REGISTRY,
    Registry,
    alive_key,
    sessions_key,
    sweep_dead_nodes,
)
from cloudbank.video.room import ROOMS
from cloudbank.video.testing_peers import join_token

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    assert await check()


async def test_heartbeat_writes_the_protocol_entry(redis_client: redis.asyncio.Redis) -> None:
    reg = Registry(redis_client, "n1", "http://127.0.0.1:9/video/", lambda: ["s1", "s2"])
    await reg.heartbeat()
    entry = json.loads(await redis_client.hget(NODES, "n1"))
    assert set(entry) == {"id", "url", "calls", "cpu", "draining", "heartbeat_at"}
    assert entry["id"] == "n1" and entry["calls"] == 2 and entry["draining"] is False
    assert entry["url"] == "http://127.0.0.1:9/video/" and isinstance(entry["cpu"], float)
    assert 0 < await redis_client.ttl(alive_key("n1")) <= 10
    assert await redis_client.smembers(sessions_key("n1")) == {"s1", "s2"}


async def test_a_dead_node_is_dropped_once_with_its_sessions(redis_client: redis.asyncio.Redis) -> None:
    dead = Registry(redis_client, "dead", "u", lambda: ["s7"])
    live = Registry(redis_client, "live", "u", lambda: [])
    await dead.heartbeat()
    await live.heartbeat()
    assert await sweep_dead_nodes(redis_client) == []
    await redis_client.delete(alive_key("dead"))  # it stopped heartbeating: the key expired
    first, second = await asyncio.gather(sweep_dead_nodes(redis_client), sweep_dead_nodes(redis_client))
    assert sorted(first + second) == ["dead"]
    assert await redis_client.hkeys(NODES) == ["live"]
    events = await redis_client.xrange(EVENTS)
    assert len(events) == 1
    event = events[0][1]
    assert event["type"] == "node.down" and event["node"] == "dead" and json.loads(event["sessions"]) == ["s7"]
    assert not await redis_client.exists(sessions_key("dead"))


async def test_drain_waits_for_calls_up_to_a_limit(redis_client: redis.asyncio.Redis) -> None:
    sessions = ["s1"]
    reg = Registry(redis_client, "n1", "u", lambda: list(sessions))
    assert await reg.drain(0.2) == 1
    assert json.loads(await redis_client.hget(NODES, "n1"))["draining"] is True
    asyncio.get_running_loop().call_later(0.1, sessions.clear)
    assert await reg.drain(5.0) == 0


async def test_the_node_registers_refuses_new_calls_while_draining_and_deregisters(
        aiohttp_client: MakeClient, config: Config, redis_client: redis.asyncio.Redis) -> None:
    node = await aiohttp_client(create_app(config.with_(video_node_id="n1", video_drain_s=0.5), sinks=[]))

    async def registered() -> bool:
        return await redis_client.hget(NODES, "n1") is not None

    await until(registered)
    # a call opens a room: the load is published at once, not at the next beat
    ws = await node.ws_connect(f"/ws?token={await join_token(node.app[ENGINE], 's1', 'customer', 'n1')}")
    await ws.receive_json(timeout=5)

    async def one_call() -> bool:
        raw = await redis_client.hget(NODES, "n1")
        return raw is not None and json.loads(raw)["calls"] == 1

    await until(one_call)
    node.app[REGISTRY].draining = True
    tok = await join_token(node.app[ENGINE], "s2", "customer", "n1")
    resp = await node.get(f"/ws?token={tok}", headers=UPGRADE)
    assert resp.status == 409 and (await resp.json())["code"] == "draining"
    assert set(node.app[ROOMS].rooms) == {"s1"}
    # the current call may still be joined (the teller, or a rejoin)
    ws2 = await node.ws_connect(f"/ws?token={await join_token(node.app[ENGINE], 's1', 'teller', 'n1')}")
    assert (await ws2.receive_json(timeout=5))["type"] == "joined"
    await ws.close()
    await ws2.close()
    await node.close()
    assert await redis_client.hget(NODES, "n1") is None
    assert not await redis_client.exists(alive_key("n1"))
