"""Calls that never start are ended by the platform, so no teller is held forever.

A session still `connecting` `session_connect_timeout_s` after it started (the customer walked away
as the teller accepted, a browser that cannot reach the video node) goes to wrap-up with
`session.ended {by: "platform", reason: "no_media"}`, and the ACD frees the teller as after any call.
`Sessions.start` puts each deadline in a Redis sorted set, so any platform node may expire a session;
ZREM decides which.

An accept whose session was never made (the platform node died between the ACD's accept and the
session's insert) leaves its teller busy with no call: after `ORPHAN_ACCEPT_S` the ticket goes back
to its place at the front of the queue and the teller to not-ready (`call_not_started`), as when a
session cannot start. A call that ended on a node that died before telling the ACD leaves its teller
busy too: the ACD is told then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import sqlalchemy as sa
from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform import acd_link
from cloudbank.platform.errors import Conflict, NotFound
from cloudbank.platform.records import sessions
from cloudbank.platform.routing import P
from cloudbank.platform.service import ENGINE, REDIS, REDIS_DOWN
from cloudbank.platform.sessions import CONNECT_DEADLINES, Sessions

log = logging.getLogger("cloudbank.sessions")

SWEEP_S = 1.0
BATCH = 100
ORPHAN_ACCEPT_S = 30.0
ORPHAN_EVERY = 5  # sweeps: tellers are looked at every 5 s
MAX_TELLERS = 10_000


async def expire_due(app: web.Application, now: float | None = None) -> int:
    """End the sessions past their deadline that are still connecting; returns how many ended."""
    redis: Redis = app[REDIS]
    due = await redis.zrangebyscore(CONNECT_DEADLINES, "-inf", now if now is not None else time.time(), 0, BATCH)
    svc, ended = Sessions(app), 0
    for raw in due:
        session_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not await redis.zrem(CONNECT_DEADLINES, session_id):
            continue  # another node took it
        try:
            session = await svc.get(session_id)
            if session.state == "connecting":
                await svc.finish(session, "platform", "platform", "session.no_media", reason="no_media")
                ended += 1
        except (NotFound, Conflict):
            continue  # gone, or media came up (or a hang-up) as we looked
    return ended


async def release_orphan_accepts(app: web.Application, now: float | None = None) -> int:
    """Free tellers busy for ORPHAN_ACCEPT_S with no call, or with one that is over; returns how many."""
    redis: Redis = app[REDIS]
    router = acd_link.router(app)
    now = now if now is not None else time.time()
    released = 0
    for raw in list(await redis.smembers(f"{P}tellers"))[:MAX_TELLERS]:
        teller_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        view = await router.teller(teller_id)
        ticket_id, since = view["ticket_id"], view["since"] or now
        if view["state"] != "busy" or not ticket_id or now - since < ORPHAN_ACCEPT_S:
            continue
        async with app[ENGINE].connect() as conn:
            started = (await conn.execute(sa.select(sessions.c.state).where(
                sessions.c.ticket_id == ticket_id, sessions.c.teller_id == teller_id).limit(1))).first()
        if started is not None:
            if started.state in ("wrap_up", "closed"):
                # The call ended on a node that died before telling the ACD: finish that part.
                await acd_link.call_ended(app, teller_id, ticket_id)
                released += 1
            continue
        try:
            await router.undo_accept(teller_id, ticket_id, reason="call_not_started")
        except (Conflict, NotFound):
            continue  # the teller moved on as we looked
        log.warning("teller %s was busy with ticket %s but no call had started: the ticket is back in "
                    "its queue", teller_id, ticket_id)
        released += 1
    return released


async def _loop(app: web.Application, stop: asyncio.Event) -> None:
    passes = 0
    while not stop.is_set():
        try:
            if ended := await expire_due(app):
                log.info("%d session(s) ended: media never came up", ended)
            if passes % ORPHAN_EVERY == 0:
                await release_orphan_accepts(app)
            passes += 1
        except REDIS_DOWN as exc:
            log.warning("expiring calls that never started paused: Redis unavailable (%s)", type(exc).__name__)
        except Exception:  # noqa: BLE001 - keep sweeping through a Redis or database hiccup
            log.exception("expiring sessions that never connected failed; retrying")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_S)


async def connect_timeout_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(app, stop), name="session-connect-timeout")
    yield
    stop.set()  # let a pass finish rather than cancel it inside a database transaction
    await asyncio.wait({task}, timeout=10)
    task.cancel()
