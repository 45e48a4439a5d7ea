"""The one place where sessions and the catalogue call the ACD (`routing.Router`, built by P1's issue).

Kept narrow on purpose: if the Router's API changes, only this module changes.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from cloudbank.platform.errors import Conflict, NotFound
from cloudbank.platform.routing import ROUTER, QueueSpec, Router, ServiceLike
from cloudbank.platform.service import CONFIG, REDIS

log = logging.getLogger("cloudbank.sessions")


def router(app: web.Application) -> Router:
    """The app's Router (set up by the ACD's cleanup context); a fresh one over the same Redis
    otherwise: a Router is stateless, so both behave the same."""
    existing = app.get(ROUTER)
    if existing is not None:
        return existing
    return Router(app[REDIS], callback_threshold_s=app[CONFIG].callback_threshold_s)


async def configure_queue(app: web.Application, svc: ServiceLike) -> None:
    """A catalogue edit reaches the queue at once (strategy, ring and wrap-up times, skill)."""
    await router(app).configure_queue(QueueSpec.of(svc))


async def call_ended(app: web.Application, teller_id: str, ticket_id: str) -> str:
    """The teller goes to wrap-up and the ticket is done. Returns "" or why the ACD had moved on."""
    try:
        await router(app).call_ended(teller_id, ticket_id)
    except (Conflict, NotFound) as exc:
        # The ACD already let go of this call (e.g. a transfer moved the ticket on): the session
        # still ends; say so in the audit record instead of refusing the teller.
        log.info("call_ended for %s/%s: %s", teller_id, ticket_id, exc.message)
        return exc.message
    return ""


async def abandon_waiting(app: web.Application, ticket_id: str) -> bool:
    """Take a ticket that waits (or rings) for a customer who has gone out of its queue; False when
    it is not waiting (the usual case: the call it was in is over)."""
    try:
        await router(app).abandon(ticket_id)
    except (Conflict, NotFound):
        return False
    return True


async def transfer(app: web.Application, ticket_id: str, queue: str | None, teller: str | None) -> dict[str, Any]:
    """Re-queue the ticket to another queue or teller (the ACD refuses unknown ones, 404)."""
    return await router(app).transfer(ticket_id, to_queue=queue, to_teller=teller)


async def wrapup_done(app: web.Application, teller_id: str, not_ready: bool, reason: str) -> str:
    """End the teller's wrap-up: ready, or not_ready with a reason. Returns "" or what happened instead."""
    r = router(app)
    try:
        await r.wrapup_done(teller_id, not_ready=not_ready, reason=reason)
    except Conflict as exc:
        # The queue's wrap-up timer ended it already; honour a request for not-ready anyway.
        if not_ready:
            await r.set_state(teller_id, "not_ready", reason or "after_call_work")
        return exc.message
    return ""
