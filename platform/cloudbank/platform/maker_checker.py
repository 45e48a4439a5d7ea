"""Maker-checker on a table of versions: a change is a new version that waits for a second person.

Used by kiosk playlists (`cloudbank.media.playlists`) and service definitions
(`cloudbank.platform.service_definitions`). Each keeps its versions in its own table, keyed by the
thing changed (a playlist id, a service code) and a version number, with the columns `state`,
`made_by`, `made_at`, `decided_by`, `decided_at` and `reason`; this module owns how those change:

    pending ──approve (another admin)──> approved ──(a later version approved)──> superseded
       └─────reject (any admin)───────> rejected

One change at a time: a new version is refused (409) while another one is pending. The maker may
never approve their own change (403); any admin, the maker included, may reject it. Two deciders
at the same moment: one wins, the other gets a 409.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudbank.platform.errors import Conflict, Forbidden, NotFound

PENDING, APPROVED, REJECTED, SUPERSEDED = "pending", "approved", "rejected", "superseded"


class MakerChecker:
    """The version states of `table`, whose versions of one thing share the value of column `key`.

    `missing(key, number)` is the message of the 404 for a version that does not exist."""

    def __init__(self, engine: AsyncEngine, table: sa.Table, key: str,
                 missing: Callable[[str, int], str]) -> None:
        self.engine = engine
        self.table = table
        self.key = table.c[key]
        self.missing = missing

    def _one(self, key: str, number: int) -> Any:
        return sa.and_(self.key == key, self.table.c.version == number)

    async def next_number(self, conn: AsyncConnection, key: str) -> int:
        """The number of a new version of `key` (inside the caller's transaction); 409 while one is pending."""
        rows = (await conn.execute(sa.select(self.table.c.version, self.table.c.state)
                                   .where(self.key == key))).all()
        pending = [r.version for r in rows if r.state == PENDING]
        if pending:
            raise Conflict(f"version {pending[0]} is still waiting for approval: approve or reject it first",
                           pending_version=pending[0])
        return max((r.version for r in rows), default=0) + 1

    async def _pending(self, key: str, number: int) -> Any:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.table.c.state, self.table.c.made_by)
                                      .where(self._one(key, number)))).first()
        if row is None:
            raise NotFound(self.missing(key, number))
        if row.state != PENDING:
            raise Conflict(f"version {number} is {row.state}, not pending", state=row.state)
        return row

    async def approve(self, key: str, number: int, by: str) -> None:
        """Approve a pending version (never by its maker) and supersede the approved one before it."""
        row = await self._pending(key, number)
        if row.made_by == by:
            raise Forbidden("you made this change: another admin must approve it (maker-checker)")
        async with self.engine.begin() as conn:
            done = await conn.execute(self.table.update().where(
                self._one(key, number), self.table.c.state == PENDING, self.table.c.made_by != by,
            ).values(state=APPROVED, decided_by=by, decided_at=time.time()))
            if done.rowcount != 1:
                raise Conflict(f"version {number} was decided by someone else a moment ago")
            await conn.execute(self.table.update().where(
                self.key == key, self.table.c.state == APPROVED, self.table.c.version != number,
            ).values(state=SUPERSEDED))

    async def reject(self, key: str, number: int, by: str, reason: str) -> None:
        """Reject a pending version with a reason (any admin, its maker included)."""
        await self._pending(key, number)
        async with self.engine.begin() as conn:
            done = await conn.execute(self.table.update().where(
                self._one(key, number), self.table.c.state == PENDING,
            ).values(state=REJECTED, decided_by=by, decided_at=time.time(), reason=reason))
            if done.rowcount != 1:
                raise Conflict(f"version {number} was decided by someone else a moment ago")
