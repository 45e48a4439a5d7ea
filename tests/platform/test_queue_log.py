"""The queue log: written by the routing scripts into a Redis stream, copied once into the records."""

from __future__ import annotations

import pytest
import redis.asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.config import Config
from cloudbank.platform.queue_log import GROUP, STREAM, QueueLog
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.routing import QueueSpec, Router


@pytest.fixture
async def engine(config: Config) -> AsyncEngine:
    eng = create_engine(config.effective_database_url)
    await migrate(eng)
    yield eng  # type: ignore[misc]
    await eng.dispose()


async def _some_events(r: redis.asyncio.Redis, n: int = 5) -> list[str]:
    """`n` tickets entering at 1000, 1001, ... (after any entered already)."""
    start = 1000.0 + await r.xlen(STREAM)
    now = [start]
    router = Router(r, clock=lambda: now[0], publish=False)
    await router.configure_queue(QueueSpec("general", "general"))
    ids = []
    for i in range(n):
        now[0] = start + i
        ids.append(str((await router.enqueue(service="general", customer=f"device:{i}", channel="kiosk"))["id"]))
    return ids


async def test_routing_decisions_land_in_the_stream_with_their_fields(redis_client: redis.asyncio.Redis) -> None:
    ids = await _some_events(redis_client, 2)
    events = await QueueLog(redis_client).recent(0)
    assert [(e.event, e.queue, e.ticket_id, e.teller_id) for e in events] == [
        ("enter", "general", ids[0], None), ("enter", "general", ids[1], None)]
    assert events[0].data == {"priority": "normal", "channel": "kiosk"}
    assert events[0].at < events[1].at


async def test_recent_reads_only_the_window(redis_client: redis.asyncio.Redis) -> None:
    await _some_events(redis_client, 600)  # more than one read batch
    log = QueueLog(redis_client)
    window = await log.recent(since=1100.0, until=1200.0, batch=64)
    assert [e.at for e in window] == [float(t) for t in range(1101, 1201)]
    assert len(await log.recent(0, batch=64)) == 600


async def test_append_refuses_unknown_events(redis_client: redis.asyncio.Redis) -> None:
    log = QueueLog(redis_client)
    with pytest.raises(ValueError, match="unknown queue event"):
        await log.append("party", "general", "t1", 1.0)
    await log.append("transfer", "general", "t1", 1.0, teller_id="u1", to_queue="loans")
    (ev,) = await log.recent(0)
    assert (ev.event, ev.teller_id, ev.data["to_queue"]) == ("transfer", "u1", "loans")


async def test_two_nodes_persist_each_entry_once(redis_client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    ids = await _some_events(redis_client, 30)
    node_a, node_b = QueueLog(redis_client, engine), QueueLog(redis_client, engine)
    written = await node_a.persist("a", count=10) + await node_b.persist("b", count=10)
    written += await node_a.persist("a") + await node_b.persist("b")
    assert written == 30
    assert await node_a.persist("a") == 0
    history = await node_b.history("general")
    assert [e.ticket_id for e in history] == ids
    assert history == await node_a.recent(0)  # the records hold exactly what the stream holds
    assert [e.ticket_id for e in await node_a.history(since=1009.0, until=1011.0)] == ids[10:12]
    assert await node_a.history("other") == []


async def test_entries_a_dead_node_had_read_are_taken_over(redis_client: redis.asyncio.Redis,
                                                         engine: AsyncEngine) -> None:
    await _some_events(redis_client, 4)
    await QueueLog(redis_client, engine).persist("warmup")  # creates the group, copies the first 4
    await _some_events(redis_client, 3)
    # node "dead" reads the next entries and dies before writing or acknowledging them
    await redis_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=10)
    survivor = QueueLog(redis_client, engine, claim_idle_ms=0)
    assert await survivor.persist("alive") == 3
    assert len(await survivor.history()) == 7
    assert (await redis_client.xpending(STREAM, GROUP))["pending"] == 0
