"""A monitoring supervisor speaks: whisper (to the teller only) or barge-in (teller and customer).

`POST sessions/<id>/talk {mode: "whisper"|"barge"|"off"}` (a supervisor of the session's queue,
while the call is live). The platform records its decision in Redis (`talk_key`, for as long as a
join token lives) and on the audit chain (`session.whisper_started|stopped`,
`session.barge_started|stopped`); the video node forwards the supervisor's microphone only as far
as that key allows when the supervisor's signalling asks (`{type: "talk", mode}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from cloudbank.platform.errors import Conflict, Forbidden
from cloudbank.platform.service import AUDIT, authenticate
from cloudbank.platform.sessions import LIVE, Sessions
from cloudbank.platform.validation import read_json

routes = web.RouteTableDef()


def talk_key(session_id: str, client: str) -> str:
    """Redis: the talk mode the platform allowed supervisor `client` (`user:<id>`) in a session."""
    return f"session:{session_id}:talk:{client}"


@dataclass(frozen=True)
class TalkBody:
    mode: Literal["off", "whisper", "barge"]


@routes.post("/sessions/{session_id}/talk")
async def talk(request: web.Request) -> web.Response:
    """Allow (or end) a monitoring supervisor's whisper or barge-in."""
    claims = await authenticate(request)
    svc = Sessions(request.app)
    session = await svc.get(request.match_info["session_id"][:64])
    if not await svc.supervises(claims, session.service):
        raise Forbidden("only a supervisor of this queue may whisper or barge in")
    body = await read_json(request, TalkBody)
    key = talk_key(session.id, f"user:{claims.sub}")
    before = await svc.redis.get(key)
    before = (before.decode() if isinstance(before, bytes) else before) or "off"
    if body.mode != "off" and session.state not in LIVE:
        raise Conflict(f"the session is {session.state}; there is no call to speak in", state=session.state)
    if body.mode == "off":
        await svc.redis.delete(key)
    else:
        await svc.redis.set(key, body.mode, ex=svc.config.join_token_ttl_s)
    if before != body.mode:
        audit = request.app[AUDIT]
        subject = f"session:{session.id}"
        if before != "off":
            await audit.append(claims.sub, f"session.{before}_stopped", subject, {})
        if body.mode != "off":
            await audit.append(claims.sub, f"session.{body.mode}_started", subject, {})
    return web.json_response({"session": session.public(), "mode": body.mode})
