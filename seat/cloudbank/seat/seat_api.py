"""Read-only lookups the console needs and the platform API does not offer (mounted at
/seat/api/): the live calls a supervisor may monitor, the authorisation requests waiting for a
decision, and branch names for offers.

They read the shared records database with the caller's platform token; nothing here changes
state. If the platform grows equivalents (e.g. `GET /api/sessions?state=live`), the console can
switch to them and this module can go.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.platform.errors import Forbidden
from cloudbank.platform.records import branches, sessions, users
from cloudbank.platform.service import ENGINE, REDIS, authenticate
from cloudbank.platform.sessions import AUTHZ_PENDING, PUSH_TTL_S

routes = web.RouteTableDef()

LIVE = ("connecting", "active", "on_hold")
MAX_CALLS = 500
# Pending requests are few; reading is bounded all the same.
MAX_PENDING_READ = 2000
MAX_AUTHORISATIONS = 200


def channel_of(customer: str) -> str:
    """Event client ids say the channel: device:<id> is a kiosk, phone:<id> a phone."""
    return "kiosk" if customer.startswith("device:") else "phone" if customer.startswith("phone:") else "?"


async def overseen_queues(request: web.Request) -> tuple[str, list[str]]:
    """(role, queues) of the calling supervisor or admin; no queues means all of them."""
    claims = await authenticate(request, roles=("supervisor", "admin"))
    async with request.app[ENGINE].connect() as conn:
        me = (await conn.execute(sa.select(users.c.queues, users.c.disabled).where(users.c.id == claims.sub))).first()
    if me is None or me.disabled:
        raise Forbidden("this account is disabled")
    queues: list[str] = json.loads(me.queues or "[]") if claims.role == "supervisor" else []
    return claims.role, queues


@routes.get("/api/calls")
async def live_calls(request: web.Request) -> web.Response:
    """Calls in progress in the queues the supervisor oversees (all when they oversee none)."""
    _, queues = await overseen_queues(request)
    engine = request.app[ENGINE]
    async with engine.connect() as conn:
        query = (sa.select(sessions.c.id, sessions.c.service, sessions.c.state, sessions.c.customer,
                           sessions.c.teller_id, sessions.c.created_at, users.c.display_name)
                 .select_from(sessions.outerjoin(users, users.c.id == sessions.c.teller_id))
                 .where(sessions.c.state.in_(LIVE))
                 .order_by(sessions.c.created_at).limit(MAX_CALLS))
        if queues:
            query = query.where(sessions.c.service.in_(queues))
        rows = (await conn.execute(query)).all()
    calls: list[dict[str, Any]] = [
        {"id": r.id, "service": r.service, "state": r.state, "channel": channel_of(r.customer),
         "teller_id": r.teller_id, "teller_name": r.display_name or r.teller_id, "started_at": r.created_at}
        for r in rows]
    return web.json_response({"calls": calls}, headers={"Cache-Control": "no-store"})


@routes.get("/api/branches")
async def branch_names(request: web.Request) -> web.Response:
    """Branch id -> name, so an offer can say which branch's kiosk is calling."""
    await authenticate(request, roles=("teller", "supervisor", "admin"))
    async with request.app[ENGINE].connect() as conn:
        rows = (await conn.execute(sa.select(branches.c.id, branches.c.name).order_by(branches.c.id))).all()
    return web.json_response({"branches": {r.id: r.name for r in rows}}, headers={"Cache-Control": "no-store"})


@routes.get("/api/authorisations")
async def pending_authorisations(request: web.Request) -> web.Response:
    """Authorisation requests still waiting for a decision in the queues the supervisor oversees.

    The platform indexes them by request time (`sessions.AUTHZ_PENDING`; each request is
    `authz:<id>`, JSON, with a TTL), so a reloaded console finds them however large Redis is.
    """
    _, queues = await overseen_queues(request)
    redis = request.app[REDIS]
    await redis.zremrangebyscore(AUTHZ_PENDING, "-inf", time.time() - PUSH_TTL_S)  # their records expired
    ids = [i.decode() if isinstance(i, bytes) else str(i)
           for i in await redis.zrange(AUTHZ_PENDING, 0, MAX_PENDING_READ - 1)]
    found: list[dict[str, Any]] = []
    for raw in await redis.mget([f"authz:{i}" for i in ids]) if ids else []:
        try:
            item = json.loads(raw) if raw else None
        except ValueError:
            continue
        if (isinstance(item, dict) and item.get("state") == "pending"
                and (not queues or item.get("service") in queues)):
            found.append({k: item.get(k) for k in ("id", "session_id", "service", "teller_id", "reason", "at")})
    found.sort(key=lambda a: float(a.get("at") or 0))
    return web.json_response({"authorisations": found[:MAX_AUTHORISATIONS]}, headers={"Cache-Control": "no-store"})
