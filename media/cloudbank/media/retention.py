"""Retention of recordings: a setting for how many days to keep them, and the purge job.

`retention_days = 0` (the default) keeps recordings forever: nothing is deleted until an admin
sets a period. Each purged recording leaves an audit record (`recording.purged`, with the manifest
hash it had) and its catalogue row, marked purged, so what existed and when it went stays provable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.media.recordings import RecordingsCatalogue
from cloudbank.platform.audit import PURGED_ACTION, AuditChain
from cloudbank.platform.records import media_settings

RETENTION_KEY = "retention_days"
MAX_RETENTION_DAYS = 100 * 365


@dataclass(frozen=True)
class Settings:
    retention_days: int
    updated_by: str | None
    updated_at: float | None


async def load_settings(engine: AsyncEngine) -> Settings:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(media_settings).where(media_settings.c.key == RETENTION_KEY))).first()
    if row is None:
        return Settings(0, None, None)
    return Settings(int(row.value), row.updated_by, float(row.updated_at))


async def set_retention(engine: AsyncEngine, days: int, by: str) -> Settings:
    now = time.time()
    async with engine.begin() as conn:
        done = await conn.execute(media_settings.update().where(media_settings.c.key == RETENTION_KEY)
                                  .values(value=str(days), updated_by=by, updated_at=now))
        if done.rowcount == 0:
            await conn.execute(media_settings.insert().values(key=RETENTION_KEY, value=str(days), updated_by=by,
                                                              updated_at=now))
    return Settings(days, by, now)


async def purge_expired(catalogue: RecordingsCatalogue, audit: AuditChain, engine: AsyncEngine, actor: str,
                        now: float | None = None) -> list[str]:
    """Delete every recording older than the retention period; returns their session ids."""
    settings = await load_settings(engine)
    purged = []
    for recording in await catalogue.expired(settings.retention_days, now):
        if await catalogue.purge(recording):
            # No "files" key: the chain verifier would look for the files that were just deleted.
            await audit.append(actor, PURGED_ACTION, f"session:{recording.session_id}", {
                "manifest_sha256": recording.manifest_sha256, "retention_days": settings.retention_days,
                "started_at": recording.started_at, "ended_at": recording.ended_at})
            purged.append(recording.session_id)
    return purged
