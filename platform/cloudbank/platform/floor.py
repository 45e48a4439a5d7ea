"""The supervisor's view of the floor: each teller with their state, time in state and current
call, and the calls in progress, in the queues the supervisor oversees (all for an admin or a
supervisor who oversees none).

    GET tellers -> {at, tellers: [{id, username, name, state, reason, since, skills, call}]}
    GET calls   -> {calls: [{id, service, state, channel, teller_id, teller_name, started_at}]}

A teller belongs to a supervisor's floor when their skills (the directory's, or the ACD's once
they went ready) include the skill of one of the supervisor's queues. States come from the ACD
(`routing.Router.teller`), calls from the sessions table. Read-only.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.platform import acd_link
from cloudbank.platform.authorisations import display_names, overseen_queues
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import sessions
from cloudbank.platform.service import ENGINE, authenticate
from cloudbank.platform.sessions import LIVE

routes = web.RouteTableDef()

MAX_CALLS = 500


def channel_of(customer: str) -> str:
    """Event client ids say the channel: device:<id> is a kiosk, phone:<id> a phone."""
    return "kiosk" if customer.startswith("device:") else "phone" if customer.startswith("phone:") else "?"


async def live_calls(app: web.Application, queues: list[str]) -> list[dict[str, Any]]:
    """Sessions not yet ended in `queues` (all when empty), oldest first."""
    query = (sa.select(sessions.c.id, sessions.c.service, sessions.c.state, sessions.c.customer,
                       sessions.c.teller_id, sessions.c.created_at)
             .where(sessions.c.state.in_(LIVE)).order_by(sessions.c.created_at).limit(MAX_CALLS))
    if queues:
        query = query.where(sessions.c.service.in_(queues))
    async with app[ENGINE].connect() as conn:
        rows = (await conn.execute(query)).all()
    names = await display_names(app, {r.teller_id for r in rows if r.teller_id})
    return [{"id": r.id, "service": r.service, "state": r.state, "channel": channel_of(r.customer),
             "teller_id": r.teller_id, "teller_name": names.get(r.teller_id, r.teller_id),
             "started_at": float(r.created_at)} for r in rows]


@routes.get("/calls")
async def calls(request: web.Request) -> web.Response:
    """Calls in progress in the queues the caller oversees."""
    claims = await authenticate(request)
    queues = await overseen_queues(request.app, claims)
    return web.json_response({"calls": await live_calls(request.app, queues)}, headers={"Cache-Control": "no-store"})


@routes.get("/tellers")
async def tellers(request: web.Request) -> web.Response:
    """The tellers on the caller's floor with their state, since when, and the call they are in."""
    app = request.app
    claims = await authenticate(request)
    queues = await overseen_queues(app, claims)
    skills_of_queues = {s.skill for s in await Catalogue(app[ENGINE]).list() if not queues or s.code in queues}
    router = acd_link.router(app)
    calls_by_teller = {c["teller_id"]: c for c in await live_calls(app, queues)}
    found: list[dict[str, Any]] = []
    for user in await Directory(app[ENGINE]).list_users(role="teller"):
        if user.disabled:
            continue
        view = await router.teller(user.id)
        skills = {**user.skills, **view["skills"]}
        if queues and not skills_of_queues.intersection(skills):
            continue
        call = calls_by_teller.get(user.id)
        found.append({
            "id": user.id, "username": user.username, "name": user.display_name or user.username,
            "state": view["state"], "reason": view["reason"] or None, "since": view["since"],
            "skills": skills,
            "call": None if call is None else {k: call[k] for k in ("id", "service", "state", "channel", "started_at")},
        })
    found.sort(key=lambda t: (str(t["name"]).lower(), t["id"]))
    return web.json_response({"at": time.time(), "tellers": found}, headers={"Cache-Control": "no-store"})
