"""Events to every client: one Redis stream per client, so a client can reconnect to any platform
node and resume from the last event id it saw without losing anything it must see.

Client ids: "user:<user id>" (tellers, supervisors, admins), "device:<device id>" (kiosks),
"phone:<customer id>" (verified phone customers). A session's audience (its parties and monitors)
is a Redis set, so the video node can send transcript lines to everyone in a call. What a console
opening mid-call needs of those (final transcript lines, keyword hits, snapshots) is also kept in
the session's history list (read by `session_history`).
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

STREAM_MAXLEN = 2000
STREAM_TTL_S = 24 * 3600
HISTORY_MAX = 5000
HISTORY_KINDS = ("transcript", "keyword", "snapshot")


def stream_key(client_id: str) -> str:
    return f"events:{client_id}"


def audience_key(session_id: str) -> str:
    return f"session:{session_id}:audience"


def history_key(session_id: str) -> str:
    return f"session:{session_id}:history"


def worth_keeping(event: dict[str, Any]) -> bool:
    """A kind of session event a console opening mid-call shows (partial lines are replaced anyway)."""
    if event.get("type") == "transcript":
        return bool(event.get("final")) and bool(str(event.get("text") or "").strip())
    return event.get("type") in HISTORY_KINDS


async def keep(redis: Redis, session_id: str, event: dict[str, Any]) -> None:
    """Append a session event to the session's history list (capped, expiring with the streams)."""
    key = history_key(session_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(key, json.dumps(event, ensure_ascii=False))
        pipe.ltrim(key, -HISTORY_MAX, -1)
        pipe.expire(key, STREAM_TTL_S)
        await pipe.execute()


def ended_key(session_id: str) -> str:
    """Set by the platform when a call's media part is over; video nodes then admit nobody to it."""
    return f"session:{session_id}:ended"


async def publish(redis: Redis, client_id: str, event: dict[str, Any]) -> str:
    """Append `event` (which must have a "type") to the client's stream; returns its id."""
    if "type" not in event:
        raise ValueError("an event needs a type")
    key = stream_key(client_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(key, {"e": json.dumps(event, ensure_ascii=False)}, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.expire(key, STREAM_TTL_S)
        event_id, _ = await pipe.execute()
    return str(event_id)


async def publish_batch(redis: Redis, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Several events, each to its client's stream, in one round trip (the ACD's hot path)."""
    if not items:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for client_id, event in items:
            if "type" not in event:
                raise ValueError("an event needs a type")
            key = stream_key(client_id)
            pipe.xadd(key, {"e": json.dumps(event, ensure_ascii=False)}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.expire(key, STREAM_TTL_S)
        await pipe.execute()


async def publish_many(redis: Redis, client_ids: list[str], event: dict[str, Any]) -> None:
    """The same event to several clients, in one round trip (a transcript line to a call's audience)."""
    await publish_batch(redis, [(client_id, event) for client_id in client_ids])


async def add_to_audience(redis: Redis, session_id: str, client_id: str) -> None:
    await redis.sadd(audience_key(session_id), client_id)
    await redis.expire(audience_key(session_id), STREAM_TTL_S)


async def remove_from_audience(redis: Redis, session_id: str, client_id: str) -> None:
    await redis.srem(audience_key(session_id), client_id)


async def publish_to_session(redis: Redis, session_id: str, event: dict[str, Any]) -> None:
    """Send `event` to every client in the session's audience."""
    members = sorted(await redis.smembers(audience_key(session_id)))
    event = {**event, "session_id": session_id}
    if worth_keeping(event):
        await keep(redis, session_id, event)
    await publish_many(redis, [m.decode() if isinstance(m, bytes) else str(m) for m in members], event)


async def read(redis: Redis, client_id: str, last_id: str = "0-0", block_ms: int | None = None,
               count: int = 100) -> list[tuple[str, dict[str, Any]]]:
    """Events after `last_id` (oldest first); blocks up to `block_ms` when there are none."""
    reply: Any = await redis.xread({stream_key(client_id): last_id}, count=count, block=block_ms)
    out: list[tuple[str, dict[str, Any]]] = []
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            raw = fields.get("e") if "e" in fields else fields.get(b"e")
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append((eid, json.loads(raw)))
    return out
