"""The ACD's background work on every platform node, started in `cleanup_ctx`.

Every `TICK_S`: expire unanswered offers, end wrap-ups, queue due call-backs, match whatever can
be matched (so a ticket is not stranded when the node that took it died before matching), and
re-push positions that changed. Every `PERSIST_S`: copy the queue log into the records and
refresh the queues from the catalogue. All of it is safe to run on many nodes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from redis.exceptions import RedisError

from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.queue_log import QueueLog
from cloudbank.platform.routing import ROUTER, Router
from cloudbank.platform.service import CONFIG, ENGINE, REDIS, REDIS_DOWN

log = logging.getLogger("cloudbank.acd")

TICK_S = 0.5
PERSIST_S = 2.0
STOP_TIMEOUT_S = 10.0
QUEUE_LOG = web.AppKey("acd_queue_log", QueueLog)


async def sync_queues(app: web.Application) -> None:
    """Make every catalogue service a queue (new services and edited ring/wrap-up times)."""
    await app[ROUTER].sync_catalogue(await Catalogue(app[ENGINE]).list())


async def run_once(app: web.Application, consumer: str, persist: bool) -> None:
    router = app[ROUTER]
    await router.tick()
    await router.push_positions()
    if persist:
        await app[QUEUE_LOG].persist(consumer)
        await sync_queues(app)


async def _loop(app: web.Application, consumer: str, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    last_persist = 0.0
    while not stop.is_set():
        try:
            persist = loop.time() - last_persist >= PERSIST_S
            await run_once(app, consumer, persist)
            if persist:
                last_persist = loop.time()
        except REDIS_DOWN as exc:
            log.warning("ACD matcher paused: Redis unavailable (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1.0)
        except Exception:  # noqa: BLE001 - keep matching through a Redis or database hiccup
            log.exception("ACD matcher pass failed; retrying")
            await asyncio.sleep(1.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)


async def acd_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the router and queue log for this app and run the matcher while it lives."""
    config = app[CONFIG]
    app[ROUTER] = Router(app[REDIS], callback_threshold_s=config.callback_threshold_s)
    app[QUEUE_LOG] = QueueLog(app[REDIS], app[ENGINE])
    try:
        await sync_queues(app)
    except (RedisError, OSError) as exc:
        # Start anyway so healthz can say Redis is down; the matcher's first pass syncs again.
        log.warning("queues not synced at start (%s); retrying in the matcher", exc)
    consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    task = asyncio.create_task(_loop(app, consumer, stop), name="acd-matcher")
    yield
    # Let the current pass finish rather than cancel it inside a database transaction.
    stop.set()
    try:
        await asyncio.wait_for(task, STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("ACD matcher did not stop within %s s; cancelled", STOP_TIMEOUT_S)
    with contextlib.suppress(Exception):  # a last copy of the queue log, best effort on the way out
        await app[QUEUE_LOG].persist(consumer)
