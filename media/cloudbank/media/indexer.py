"""Index recordings as they finish: follow the audit chain's `recording.finished` records.

A video node closes a call's recording with `finish_recording`, which writes the manifest and then
appends `recording.finished` (subject `session:<id>`) to the audit chain, the shared record every
node writes. Each media node follows that chain from where it started (a read of new rows by their
sequence number, about once a second) and indexes each finished recording at once, so a call is in
the catalogue a moment after it ends, with no "Rescan". Calls that finished while no media node ran
are picked up by the housekeeping scan at start-up; indexing is idempotent, so several media nodes
may follow the chain together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.media.recordings import RecordingsCatalogue
from cloudbank.platform.records import audit_log

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_S = 1.0
BATCH = 500


class FinishedRecordings:
    """Reads `recording.finished` records appended after `start()` and indexes their recordings."""

    def __init__(self, engine: AsyncEngine, catalogue: RecordingsCatalogue) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.last_seq: int | None = None

    async def _head(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(audit_log.c.seq), 0)))).scalar_one())

    async def start(self) -> None:
        """Remember the chain's current end: records after it are followed (earlier ones: the scan)."""
        self.last_seq = await self._head()

    async def poll(self) -> list[str]:
        """Index the recordings finished since the last poll; returns their session ids."""
        if self.last_seq is None:
            await self.start()
            return []
        head = await self._head()
        if head <= self.last_seq:
            return []
        head = min(head, self.last_seq + BATCH)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log.c.subject).where(
                audit_log.c.seq > self.last_seq, audit_log.c.seq <= head,
                audit_log.c.action == "recording.finished").order_by(audit_log.c.seq))).all()
        self.last_seq = head
        indexed = []
        for row in rows:
            subject = str(row.subject)
            if not subject.startswith("session:"):
                continue
            session_id = subject.removeprefix("session:")
            try:
                if await self.catalogue.index_one(session_id):
                    indexed.append(session_id)
            except Exception:  # one unreadable recording must not stop the others; the scan retries it
                log.exception("recordings: indexing %s failed", session_id)
        return indexed

    async def follow(self, stop: asyncio.Event, interval_s: float = FOLLOW_INTERVAL_S) -> None:
        """Poll until `stop` is set; a poll under way is finished, not cancelled half way."""
        while not stop.is_set():
            try:
                for session_id in await self.poll():
                    log.info("recordings: indexed %s as it finished", session_id)
            except Exception:  # the database was away: the next poll goes on from the same place
                log.exception("recordings: following the audit chain failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
