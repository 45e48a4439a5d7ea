"""A call whose media never comes up is ended by the platform, so its teller is not held forever.

A session still `connecting` `session_connect_timeout_s` after it started (the customer walked away
as the teller accepted, a browser that cannot reach the video node) goes to wrap-up with
`session.ended {by: "platform", reason: "no_media"}`, and the ACD frees the teller as after any call.
`Sessions.start` puts each deadline in a Redis sorted set, so any platform node may expire a session;
ZREM decides which.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform.errors import Conflict, NotFound
from cloudbank.platform.service import REDIS
from cloudbank.platform.sessions import CONNECT_DEADLINES, Sessions

log = logging.getLogger("cloudbank.sessions")

SWEEP_S = 1.0
BATCH = 100


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


async def _loop(app: web.Application, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            if ended := await expire_due(app):
                log.info("%d session(s) ended: media never came up", ended)
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
