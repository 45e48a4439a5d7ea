"""A call's history so far, for a console that opens in the middle of it (reloaded, or a supervisor
who starts monitoring late): the final transcript lines, the keyword hits and the snapshots, in the
order they were sent.

    GET sessions/<id>/history -> {transcript: [...], keywords: [...], snapshots: [...]}   teller / supervisor

`events.publish_to_session` keeps those kinds in the Redis list `session:<id>:history` as it sends
them (`events.keep`: at most `events.HISTORY_MAX`, oldest dropped first, 24 h).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform import events
from cloudbank.platform.pushes import viewed_session
from cloudbank.platform.service import REDIS, authenticate

routes = web.RouteTableDef()

NAMES = {"transcript": "transcript", "keyword": "keywords", "snapshot": "snapshots"}


async def read(redis: Redis, session_id: str) -> dict[str, list[dict[str, Any]]]:
    """The session's kept events by kind, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in NAMES.values()}
    for raw in await redis.lrange(events.history_key(session_id), 0, -1):
        event = json.loads(raw)
        name = NAMES.get(str(event.get("type")))
        if name is not None:
            out[name].append(event)
    return out


@routes.get("/sessions/{session_id}/history")
async def get_history(request: web.Request) -> web.Response:
    """The call's transcript so far, its keyword hits and snapshots (for the session's teller or a
    supervisor of its queue), so a console opened mid-call shows what came before."""
    claims = await authenticate(request)
    session = await viewed_session(request.app, request.match_info["session_id"][:64], claims)
    return web.json_response(await read(request.app[REDIS], session.id), headers={"Cache-Control": "no-store"})
