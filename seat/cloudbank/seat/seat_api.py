"""Read-only lookups the console needs and the platform API does not offer (mounted at
/seat/api/): branch names for offers. (The live calls, the tellers and the pending authorisation
requests a supervisor sees are the platform's: `GET /api/calls`, `/api/tellers`,
`/api/authorisations/pending`.)
"""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from cloudbank.platform.records import branches
from cloudbank.platform.service import ENGINE, authenticate

routes = web.RouteTableDef()


@routes.get("/api/branches")
async def branch_names(request: web.Request) -> web.Response:
    """Branch id -> name, so an offer can say which branch's kiosk is calling."""
    await authenticate(request)
    async with request.app[ENGINE].connect() as conn:
        rows = (await conn.execute(sa.select(branches.c.id, branches.c.name).order_by(branches.c.id))).all()
    return web.json_response({"branches": {r.id: r.name for r in rows}}, headers={"Cache-Control": "no-store"})
