"""Supervisor authorisations: a teller in a call asks the queue's supervisors to authorise something
(a withdrawal over the limit, a fee waived); one of them grants or refuses it, once, with a reason.

    POST sessions/<id>/authorisations {reason}     the session's teller, live call -> 201
    POST authorisations/<id> {grant, reason?}      a supervisor of the queue, once (again -> 409), live call
    GET  authorisations/pending                    supervisor (their queues) / admin: pending requests

A request lives in Redis as `authz:<id>` (JSON, AUTHZ_TTL_S); `authz:pending` is a sorted set of the
pending ids scored by request time, so a reloaded supervisor console lists them however large
Redis is; `authz:<id>:decided` (SET NX) makes the decision single. Both steps are appended to the
audit chain; the request goes to the queue's supervisors as `authorisation.request`, the decision
to the teller as `authorisation.result`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.platform import events
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.errors import Conflict, Forbidden, NotFound
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import sessions, users
from cloudbank.platform.service import AUDIT, ENGINE, REDIS, authenticate
from cloudbank.platform.sessions import LIVE, Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

AUTHZ_PENDING = "authz:pending"
AUTHZ_TTL_S = 24 * 3600
AUTHZ_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Pending requests are few; reading is bounded all the same.
MAX_PENDING_READ = 2000
MAX_LISTED = 200

# Told of each decision (a work order waiting for it moves on), after it is stored.
DecisionHook = Callable[[web.Application, dict[str, Any]], Awaitable[None]]
DECISION_HOOKS: web.AppKey[list[DecisionHook]] = web.AppKey("authorisation_decision_hooks")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def overseen_queues(app: web.Application, claims: Claims) -> list[str]:
    """The queues a supervisor oversees (empty: all of them; an admin sees all). Disabled: 403."""
    if claims.role == "admin":
        return []
    user = await Directory(app[ENGINE]).get_user(claims.sub)
    if user.disabled:
        raise Forbidden("this account is disabled")
    return list(user.queues)


async def display_names(app: web.Application, user_ids: set[str]) -> dict[str, str]:
    """User id -> display name (the username when it has none) for the ids given."""
    if not user_ids:
        return {}
    async with app[ENGINE].connect() as conn:
        rows = (await conn.execute(sa.select(users.c.id, users.c.username, users.c.display_name)
                                   .where(users.c.id.in_(sorted(user_ids))))).all()
    return {r.id: r.display_name or r.username for r in rows}


class Authorisations:
    """Requests and decisions over the app's Redis, records and audit chain."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.redis = app[REDIS]
        self.sessions = Sessions(app)

    async def request(self, session_id: str, claims: Claims, reason: str,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask the queue's supervisors; `extra` (a work order's id and values) goes with the request."""
        session, _ = await self.sessions.for_party(session_id, claims, ("teller",))
        return await self.open(session, actor(claims), reason, extra)

    async def open(self, session: Session, who: str, reason: str, extra: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
        """Open a request for the session's teller (checked by the caller) and tell the supervisors."""
        if session.state not in LIVE:
            raise Conflict(f"the session is {session.state}", state=session.state)
        authz_id, at = uuid.uuid4().hex, time.time()
        request = {"id": authz_id, "session_id": session.id, "service": session.service,
                   "teller_id": session.teller_id, "reason": reason, "state": "pending", "at": at,
                   **(extra or {})}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"authz:{authz_id}", json.dumps(request, ensure_ascii=False), ex=AUTHZ_TTL_S)
            pipe.zadd(AUTHZ_PENDING, {authz_id: at})
            await pipe.execute()
        await self.app[AUDIT].append(who, "authorisation.request", f"session:{session.id}",
                                     {"authorisation": request["id"], "reason": reason, **(extra or {})})
        for sup in await Directory(self.app[ENGINE]).list_users(role="supervisor"):
            if not sup.disabled and (not sup.queues or session.service in sup.queues):
                await events.publish(self.redis, f"user:{sup.id}", {"type": "authorisation.request", **request})
        return request

    async def decide(self, authz_id: str, claims: Claims, grant: bool, reason: str) -> dict[str, Any]:
        raw = await self.redis.get(f"authz:{authz_id}") if AUTHZ_ID_RE.match(authz_id) else None
        if raw is None:
            raise NotFound("no such authorisation request")
        request: dict[str, Any] = json.loads(_s(raw))
        if not await self.sessions.supervises(claims, request["service"]):
            raise Forbidden("only a supervisor of this queue may decide")
        session = await self.sessions.get(str(request["session_id"]))
        if session.state not in LIVE:
            raise Conflict(f"the call is over (the session is {session.state}): a decision can only be made "
                           f"during the call", state=session.state)
        if not await self.redis.set(f"authz:{authz_id}:decided", claims.sub, nx=True, ex=AUTHZ_TTL_S):
            raise Conflict("this request was decided already")
        request.update(state="granted" if grant else "refused", decided_by=claims.sub, decision_reason=reason,
                       decided_at=time.time())
        await self.redis.set(f"authz:{authz_id}", json.dumps(request, ensure_ascii=False), ex=AUTHZ_TTL_S)
        await self.redis.zrem(AUTHZ_PENDING, authz_id)
        await self.app[AUDIT].append(claims.sub, "authorisation." + request["state"],
                                     f"session:{request['session_id']}",
                                     {"authorisation": authz_id, "reason": reason})
        for hook in self.app.get(DECISION_HOOKS, []):
            await hook(self.app, request)
        await events.publish(self.redis, f"user:{request['teller_id']}",
                             {"type": "authorisation.result", **request})
        return request

    async def pending(self, claims: Claims) -> list[dict[str, Any]]:
        """Requests waiting for a decision in the caller's queues, oldest first, each naming the
        service and the teller who asked (a supervisor reads names, not codes and ids)."""
        queues = await overseen_queues(self.app, claims)
        await self.redis.zremrangebyscore(AUTHZ_PENDING, "-inf", time.time() - AUTHZ_TTL_S)  # records expired
        ids = [_s(i) for i in await self.redis.zrange(AUTHZ_PENDING, 0, MAX_PENDING_READ - 1)]
        found: list[dict[str, Any]] = []
        for raw in await self.redis.mget([f"authz:{i}" for i in ids]) if ids else []:
            try:
                item = json.loads(raw) if raw else None
            except ValueError:
                continue
            if (isinstance(item, dict) and item.get("state") == "pending"
                    and (not queues or item.get("service") in queues)):
                found.append({k: item.get(k) for k in ("id", "session_id", "service", "teller_id", "reason", "at",
                                                       "work_order_id", "values")})
        # A request whose call is over can no longer be decided (409): it leaves the list for good.
        asked = {str(a["session_id"]) for a in found}
        async with self.app[ENGINE].connect() as conn:
            live = set((await conn.execute(sa.select(sessions.c.id).where(
                sessions.c.id.in_(asked), sessions.c.state.in_(LIVE)))).scalars()) if asked else set()
        lapsed = [str(a["id"]) for a in found if str(a["session_id"]) not in live]
        if lapsed:
            await self.redis.zrem(AUTHZ_PENDING, *lapsed)
        found = sorted((a for a in found if str(a["session_id"]) in live), key=lambda a: float(a.get("at") or 0))
        found = found[:MAX_LISTED]
        names = await display_names(self.app, {str(a["teller_id"]) for a in found if a.get("teller_id")})
        services = {s.code: s for s in await Catalogue(self.app[ENGINE]).list()}
        for a in found:
            a["teller_name"] = names.get(str(a.get("teller_id")))
            svc = services.get(str(a.get("service")))
            a["service_name"] = svc.name if svc else None
            a["service_names"] = svc.names_by_language() if svc else {}
        return found


@dataclass(frozen=True)
class AuthorisationBody:
    reason: str = field(metadata=limit(500))


@dataclass(frozen=True)
class DecisionBody:
    grant: bool
    reason: str = field(default="", metadata=limit(500))


@routes.post("/sessions/{session_id}/authorisations")
async def request_authorisation(request: web.Request) -> web.Response:
    """The teller asks the queue's supervisors to authorise something."""
    claims = await authenticate(request)
    body = await read_json(request, AuthorisationBody)
    sid = request.match_info["session_id"][:64]
    return web.json_response({"authorisation": await Authorisations(request.app).request(sid, claims, body.reason)},
                             status=201)


@routes.post("/authorisations/{authorisation_id}")
async def decide_authorisation(request: web.Request) -> web.Response:
    """A supervisor of the queue grants or refuses (once)."""
    claims = await authenticate(request)
    body = await read_json(request, DecisionBody)
    result = await Authorisations(request.app).decide(
        request.match_info["authorisation_id"][:64], claims, body.grant, body.reason)
    return web.json_response({"authorisation": result})


@routes.get("/authorisations/pending")
async def pending_authorisations(request: web.Request) -> web.Response:
    """Pending requests in the queues the supervisor oversees (an admin: all)."""
    claims = await authenticate(request)
    return web.json_response({"authorisations": await Authorisations(request.app).pending(claims)},
                             headers={"Cache-Control": "no-store"})
