"""HTTP endpoints of call sessions (`sessions/<id>/...`); authorisations are in `authorisations.py`.

Parties are the session's customer (its kiosk device or phone token) and its teller; anyone else
asking about a session gets a 404, as for an unknown id. The rules live in `sessions.Sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from cloudbank.platform.service import authenticate
from cloudbank.platform.sessions import Sessions
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json
from cloudbank.platform.work_orders import WorkOrders

routes = web.RouteTableDef()

CUSTOMERS = ("device", "phone")
PARTIES = (*CUSTOMERS, "teller", "supervisor", "admin")


@dataclass(frozen=True)
class EmptyBody:
    """No fields: send nothing, or `{}`."""


@dataclass(frozen=True)
class TransferBody:
    queue: str | None = field(default=None, metadata=limit(64))
    teller: str | None = field(default=None, metadata=limit(64))


@dataclass(frozen=True)
class WrapupBody:
    disposition: str = field(metadata=limit(64))
    service_done: bool
    notes: str = field(default="", metadata=limit(4000))
    not_ready: bool = False
    reason: str = field(default="", metadata=limit(64))


async def _empty(request: web.Request) -> None:
    """Action endpoints take no body; an empty one or `{}` is fine, anything else is refused."""
    if request.can_read_body and request.content_length != 0:
        await read_json(request, EmptyBody)


async def _caller(request: web.Request, roles: tuple[str, ...] = PARTIES) -> tuple[Sessions, Claims, str]:
    claims = await authenticate(request, roles=roles)
    return Sessions(request.app), claims, request.match_info.get("session_id", "")[:64]


@routes.get("/sessions")
async def my_sessions(request: web.Request) -> web.Response:
    """The caller's sessions that are not closed yet (customer or teller), newest first."""
    svc, claims, _ = await _caller(request, (*CUSTOMERS, "teller"))
    return web.json_response({"sessions": [s.public() for s in await svc.mine(claims)]})


@routes.get("/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    """A party's view of the session."""
    svc, claims, sid = await _caller(request, (*CUSTOMERS, "teller"))
    session, party = await svc.for_party(sid, claims)
    return web.json_response({"session": session.public(), "party": party})


@routes.post("/sessions/{session_id}/join")
async def join(request: web.Request) -> web.Response:
    """A fresh join token for a party (rejoin after a drop; moves the call if its node died)."""
    svc, claims, sid = await _caller(request, (*CUSTOMERS, "teller"))
    await _empty(request)
    return web.json_response(await svc.join(sid, claims))


@routes.post("/sessions/{session_id}/activate")
async def activate(request: web.Request) -> web.Response:
    """Media is up: connecting -> active (idempotent when active)."""
    svc, claims, sid = await _caller(request, (*CUSTOMERS, "teller"))
    await _empty(request)
    return web.json_response({"session": (await svc.activate(sid, claims)).public()})


@routes.post("/sessions/{session_id}/hold")
async def hold(request: web.Request) -> web.Response:
    svc, claims, sid = await _caller(request, ("teller",))
    await _empty(request)
    return web.json_response({"session": (await svc.hold(sid, claims)).public()})


@routes.post("/sessions/{session_id}/resume")
async def resume(request: web.Request) -> web.Response:
    svc, claims, sid = await _caller(request, ("teller",))
    await _empty(request)
    return web.json_response({"session": (await svc.resume(sid, claims)).public()})


@routes.post("/sessions/{session_id}/end")
async def end(request: web.Request) -> web.Response:
    """Either party hangs up; the teller goes to wrap-up."""
    svc, claims, sid = await _caller(request, (*CUSTOMERS, "teller"))
    await _empty(request)
    return web.json_response({"session": (await svc.end(sid, claims)).public()})


@routes.post("/sessions/{session_id}/transfer")
async def transfer(request: web.Request) -> web.Response:
    """Send the customer to another queue or to a named teller."""
    svc, claims, sid = await _caller(request, ("teller",))
    body = await read_json(request, TransferBody)
    return web.json_response(await svc.transfer(sid, claims, body.queue, body.teller))


@routes.post("/sessions/{session_id}/wrapup")
async def wrapup(request: web.Request) -> web.Response:
    """Close the session with a disposition code; the teller is ready again (or not_ready)."""
    svc, claims, sid = await _caller(request, ("teller",))
    body = await read_json(request, WrapupBody)
    await WorkOrders(request.app).check_wrapup(sid, claims, body.service_done)
    session = await svc.wrapup(sid, claims, body.disposition, body.notes, body.service_done, body.not_ready,
                               body.reason)
    return web.json_response({"session": session.public()})


@routes.post("/sessions/{session_id}/monitor")
async def monitor(request: web.Request) -> web.Response:
    """A supervisor of the session's queue joins silently."""
    svc, claims, sid = await _caller(request, ("supervisor",))
    await _empty(request)
    return web.json_response(await svc.monitor(sid, claims))
