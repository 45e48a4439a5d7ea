"""Kiosk playlists, one per branch (kiosk group), changed under maker-checker.

Every change is a new version that starts `pending`. Only a different admin may approve it (the
maker may not); approving makes it the one kiosks get and marks the version it replaces
`superseded`. Any admin, the maker included, may reject a pending version. One change at a time:
a new proposal waits until the pending one is decided. Kiosks only ever see approved versions.
The states and who may move them are `cloudbank.platform.maker_checker`'s.

    pending ──approve (another admin)──> approved ──(a later version approved)──> superseded
       └─────reject (any admin)───────> rejected
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudbank.platform.errors import Conflict, NotFound
from cloudbank.platform.maker_checker import MakerChecker
from cloudbank.platform.records import branches, playlist_versions, playlists


@dataclass(frozen=True)
class Entry:
    item_id: str
    duration_s: float


@dataclass(frozen=True)
class Version:
    playlist_id: str
    version: int
    state: str
    items: tuple[Entry, ...]
    made_by: str
    made_at: float
    decided_by: str | None
    decided_at: float | None
    reason: str | None

    def public(self) -> dict[str, Any]:
        body = asdict(self)
        body["items"] = [asdict(e) for e in self.items]
        return body


@dataclass(frozen=True)
class Playlist:
    id: str
    branch_id: str
    name: str
    created_by: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _version(row: Any) -> Version:
    entries = tuple(Entry(str(e["item_id"]), float(e["duration_s"])) for e in json.loads(row.items))
    return Version(row.playlist_id, int(row.version), row.state, entries, row.made_by, float(row.made_at),
                   row.decided_by, row.decided_at, row.reason)


def _playlist(row: Any) -> Playlist:
    return Playlist(row.id, row.branch_id, row.name, row.created_by, float(row.created_at))


def _entries_json(entries: list[Entry]) -> str:
    return json.dumps([asdict(e) for e in entries], separators=(",", ":"))


def _missing(playlist_id: str, number: int) -> str:
    return f"playlist {playlist_id[:64]} has no version {number}"


class Playlists:
    """Playlists and their versions in the records database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.checker = MakerChecker(engine, playlist_versions, "playlist_id", _missing)

    async def create(self, branch_id: str, name: str, entries: list[Entry], by: str) -> tuple[Playlist, Version]:
        """A branch's playlist with its first version, pending approval."""
        now = time.time()
        playlist = Playlist(str(uuid.uuid4()), branch_id, name, by, now)
        async with self.engine.connect() as conn:
            if (await conn.execute(sa.select(branches.c.id).where(branches.c.id == branch_id))).first() is None:
                raise NotFound(f"no branch {branch_id[:64]}", field="branch")
        try:
            async with self.engine.begin() as conn:
                await conn.execute(playlists.insert().values(**asdict(playlist)))
                version = await self._insert_version(conn, playlist.id, 1, entries, by, now)
        except IntegrityError:
            raise Conflict(f"branch {branch_id[:64]} has a playlist already: propose a new version of it",
                           field="branch") from None
        return playlist, version

    async def _insert_version(self, conn: AsyncConnection, playlist_id: str, number: int, entries: list[Entry],
                              by: str, now: float) -> Version:
        await conn.execute(playlist_versions.insert().values(
            playlist_id=playlist_id, version=number, state="pending", items=_entries_json(entries),
            made_by=by, made_at=now))
        return Version(playlist_id, number, "pending", tuple(entries), by, now, None, None, None)

    async def propose(self, playlist_id: str, entries: list[Entry], by: str) -> Version:
        """A new pending version; refused while another one waits for approval."""
        await self.get(playlist_id)
        try:
            async with self.engine.begin() as conn:
                number = await self.checker.next_number(conn, playlist_id)
                return await self._insert_version(conn, playlist_id, number, entries, by, time.time())
        except IntegrityError:
            raise Conflict("another change to this playlist was proposed at the same moment") from None

    async def approve(self, playlist_id: str, number: int, by: str) -> Version:
        """Approve a pending version (maker-checker: never by its maker)."""
        await self.checker.approve(playlist_id, number, by)
        return await self.version(playlist_id, number)

    async def reject(self, playlist_id: str, number: int, by: str, reason: str) -> Version:
        await self.checker.reject(playlist_id, number, by, reason)
        return await self.version(playlist_id, number)

    async def get(self, playlist_id: str) -> Playlist:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(playlists).where(playlists.c.id == playlist_id))).first()
        if row is None:
            raise NotFound(f"no playlist {playlist_id[:64]}")
        return _playlist(row)

    async def version(self, playlist_id: str, number: int) -> Version:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(playlist_versions).where(
                playlist_versions.c.playlist_id == playlist_id, playlist_versions.c.version == number))).first()
        if row is None:
            raise NotFound(_missing(playlist_id, number))
        return _version(row)

    async def versions(self, playlist_id: str) -> list[Version]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(playlist_versions).where(
                playlist_versions.c.playlist_id == playlist_id).order_by(playlist_versions.c.version))).all()
        return [_version(r) for r in rows]

    async def list(self) -> list[tuple[Playlist, list[Version]]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(playlists).order_by(playlists.c.branch_id))).all()
            vrows = (await conn.execute(sa.select(playlist_versions).order_by(
                playlist_versions.c.playlist_id, playlist_versions.c.version))).all()
        by_playlist: dict[str, list[Version]] = {}
        for v in vrows:
            by_playlist.setdefault(v.playlist_id, []).append(_version(v))
        return [(_playlist(r), by_playlist.get(r.id, [])) for r in rows]

    async def approved_for_branch(self, branch_id: str) -> tuple[Playlist, Version] | None:
        """What a branch's kiosks play: the approved version of its playlist, if any."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(playlists).where(playlists.c.branch_id == branch_id))).first()
            if row is None:
                return None
            vrow = (await conn.execute(sa.select(playlist_versions).where(
                playlist_versions.c.playlist_id == row.id, playlist_versions.c.state == "approved",
            ).order_by(playlist_versions.c.version.desc()).limit(1))).first()
        if vrow is None:
            return None
        return _playlist(row), _version(vrow)
