"""The queue log (like Asterisk's queue_log): every queue event, in a Redis stream and in the records.

The routing scripts append to the stream `acd:log` in the same atomic step as the change they
record, so the log never misses a decision even if a node dies right after. Every platform node's
matcher then copies new entries into the `queue_log` table through a consumer group (`persist`);
the row id is the stream id, so an entry copied twice is stored once, and entries a dead node
had claimed are taken over after a minute.

Events: enter, offer, accept, decline, timeout, abandon, complete, transfer, callback. Fields:
`at` (the router's clock), `queue`, `ticket_id`, `teller_id` and, by event, `waited_s`,
`handle_s`, `offer`, `to_queue`, `to_teller`, `action`, `priority`, `channel`, ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.records import queue_log

STREAM = "acd:log"
GROUP = "records"
EVENTS = ("enter", "offer", "accept", "decline", "timeout", "abandon", "complete", "transfer", "callback")
CLAIM_IDLE_MS = 60_000
_CORE = ("ev", "q", "ticket", "teller", "at")


@dataclass(frozen=True)
class QueueEvent:
    id: str
    at: float
    queue: str
    event: str
    ticket_id: str
    teller_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def num(self, key: str, default: float = 0.0) -> float:
        value = self.data.get(key)
        return float(value) if value not in (None, "") else default


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _value(raw: str) -> Any:
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        return raw


def from_entry(entry_id: Any, fields: Mapping[Any, Any]) -> QueueEvent:
    f = {_s(k): _s(v) for k, v in fields.items()}
    return QueueEvent(_s(entry_id), float(f["at"]), f["q"], f["ev"], f["ticket"], f.get("teller") or None,
                      {k: _value(v) for k, v in f.items() if k not in _CORE})


class QueueLog:
    """Reads the queue log from Redis (recent, for metrics) or the records (history)."""

    def __init__(self, redis: Redis, engine: AsyncEngine | None = None, claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        self.redis = redis
        self.engine = engine
        self.claim_idle_ms = claim_idle_ms

    async def append(self, event: str, queue: str, ticket_id: str, at: float, teller_id: str | None = None,
                     **data: Any) -> str:
        """Log an event that happened outside the routing scripts (they log their own)."""
        if event not in EVENTS:
            raise ValueError(f"unknown queue event {event}")
        fields = {"ev": event, "q": queue, "ticket": ticket_id, "teller": teller_id or "", "at": repr(at),
                  **{k: str(v) for k, v in data.items()}}
        return _s(await self.redis.xadd(STREAM, fields))  # type: ignore[arg-type]

    async def recent(self, since: float, until: float | None = None, batch: int = 1000,
                     max_events: int = 500_000) -> list[QueueEvent]:
        """Events with `since < at <= until`, oldest first, read backwards from the newest entry."""
        out: list[QueueEvent] = []
        upper = "+"
        while len(out) < max_events:
            entries = await self.redis.xrevrange(STREAM, max=upper, min="-", count=batch)
            if not entries:
                break
            done = False
            for entry_id, fields in entries:
                if not fields:
                    continue
                ev = from_entry(entry_id, fields)
                if ev.at <= since:
                    done = True
                    break
                if until is None or ev.at <= until:
                    out.append(ev)
            if done or len(entries) < batch:
                break
            upper = "(" + _s(entries[-1][0])
        out.reverse()
        return out

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def persist(self, consumer: str, count: int = 500) -> int:
        """Copy new stream entries into the records; returns how many were written."""
        if self.engine is None:
            raise RuntimeError("persist needs the records engine")
        await self._ensure_group()
        claimed: Any = await self.redis.xautoclaim(STREAM, GROUP, consumer, self.claim_idle_ms, "0-0", count=count)
        entries: list[Any] = list(claimed[1]) if claimed else []
        for start in ("0", ">"):  # our own unacknowledged entries first, then new ones
            reply: Any = await self.redis.xreadgroup(GROUP, consumer, {STREAM: start}, count=count)
            for _key, items in reply or []:
                entries.extend(items)
        events = {e.id: e for e in (from_entry(i, f) for i, f in entries if f)}
        if not entries:
            return 0
        written = 0
        if events:
            async with self.engine.begin() as conn:
                have = set((await conn.execute(sa.select(queue_log.c.id).where(
                    queue_log.c.id.in_(list(events))))).scalars())
                rows = [{"id": e.id, "at": e.at, "queue": e.queue, "event": e.event, "ticket_id": e.ticket_id,
                         "teller_id": e.teller_id, "data": json.dumps(dict(e.data))}
                        for e in events.values() if e.id not in have]
                if rows:
                    await conn.execute(queue_log.insert(), rows)
                written = len(rows)
        await self.redis.xack(STREAM, GROUP, *[_s(i) for i, _f in entries])
        return written

    async def history(self, queue: str | None = None, since: float = 0.0,
                      until: float | None = None, limit: int = 10_000) -> list[QueueEvent]:
        """Events from the records, oldest first."""
        if self.engine is None:
            raise RuntimeError("history needs the records engine")
        query = sa.select(queue_log).where(queue_log.c.at > since).order_by(queue_log.c.at, queue_log.c.id)
        if queue is not None:
            query = query.where(queue_log.c.queue == queue)
        if until is not None:
            query = query.where(queue_log.c.at <= until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [QueueEvent(r.id, r.at, r.queue, r.event, r.ticket_id, r.teller_id, json.loads(r.data))
                for r in rows]
