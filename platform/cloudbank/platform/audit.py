"""The audit chain: append-only records, each holding the SHA-256 of the one before it.

Every state change and every access to a recording is appended here. `verify()` walks the chain,
recomputes every hash, checks each record's link to the previous one and, for records that name
files (`details["files"] = [{"path": ..., "sha256": ...}]`), the files' SHA-256, and reports the
first break.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.records import GENESIS_HASH, audit_head, audit_log


def _canonical(seq: int, at: float, actor: str, action: str, subject: str, details: str, prev: str) -> bytes:
    return json.dumps([seq, repr(at), actor, action, subject, details, prev],
                      ensure_ascii=False, separators=(",", ":")).encode()


def record_hash(seq: int, at: float, actor: str, action: str, subject: str, details: str, prev: str) -> str:
    return hashlib.sha256(_canonical(seq, at, actor, action, subject, details, prev)).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Retention deletes recordings on purpose and records it with this action on the same subject.
PURGED_ACTION = "recording.purged"


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: float
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    broken_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.records} records, chain intact"
        return f"BROKEN at record {self.broken_seq}: {self.problem}"


class AuditChain:
    """Appends to and verifies the chain in the records database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # One writer at a time in this process; across processes the head row's lock serialises.
        self._lock = asyncio.Lock()

    async def append(self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None,
                     ) -> AuditRecord:
        body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        async with self._lock, self.engine.begin() as conn:
            # Taking the write lock first (UPDATE) means no other writer can read the same head.
            await conn.execute(audit_head.update().where(audit_head.c.id == 1)
                               .values(seq=audit_head.c.seq + 1))
            head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)
                                       .where(audit_head.c.id == 1))).one()
            seq, prev = int(head.seq), str(head.hash)
            at = time.time()
            digest = record_hash(seq, at, actor, action, subject, body, prev)
            await conn.execute(audit_log.insert().values(seq=seq, at=at, actor=actor, action=action,
                                                         subject=subject, details=body, prev_hash=prev,
                                                         hash=digest))
            await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(hash=digest))
        return AuditRecord(seq, at, actor, action, subject, details or {}, prev, digest)

    async def records(self, subject: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        query = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if subject is not None:
            query = query.where(audit_log.c.subject == subject)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [AuditRecord(r.seq, r.at, r.actor, r.action, r.subject, json.loads(r.details),
                            r.prev_hash, r.hash) for r in reversed(rows)]

    async def _walk(self, batch: int = 1000) -> AsyncIterator[Any]:
        last = 0
        async with self.engine.connect() as conn:
            while True:
                rows = (await conn.execute(sa.select(audit_log).where(audit_log.c.seq > last)
                                           .order_by(audit_log.c.seq).limit(batch))).all()
                if not rows:
                    return
                for row in rows:
                    yield row
                last = rows[-1].seq

    async def verify(self, base: Path | None = None) -> VerifyResult:
        """Walk the whole chain; file paths in records are resolved against `base` when relative.

        A file may be missing only when a later record purged its subject (retention): the deletion
        is then itself on the chain. A file that exists must still match its hash.
        """
        async with self.engine.connect() as conn:
            purged = set((await conn.execute(sa.select(audit_log.c.subject).where(
                audit_log.c.action == PURGED_ACTION))).scalars())
        prev, expected_seq, count = GENESIS_HASH, 1, 0
        async for r in self._walk():
            if r.seq != expected_seq:
                return VerifyResult(False, count, expected_seq, f"record {expected_seq} is missing")
            if r.prev_hash != prev:
                return VerifyResult(False, count, r.seq, "its link to the previous record does not match")
            if record_hash(r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash) != r.hash:
                return VerifyResult(False, count, r.seq, "its content does not match its hash")
            problem = await asyncio.to_thread(_check_files, r.details, base, r.subject in purged)
            if problem:
                return VerifyResult(False, count, r.seq, problem)
            prev, expected_seq, count = r.hash, expected_seq + 1, count + 1
        async with self.engine.connect() as conn:
            head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
        if head.seq != count or head.hash != prev:
            return VerifyResult(False, count, count + 1, "the chain was cut short after this record")
        return VerifyResult(True, count)


def _check_files(details_json: str, base: Path | None, purged: bool) -> str:
    try:
        files = json.loads(details_json).get("files", [])
    except (ValueError, AttributeError):
        return ""
    for entry in files if isinstance(files, list) else []:
        path = Path(str(entry.get("path", "")))
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            if purged:
                continue
            return f"file {path} is missing"
        if file_sha256(path) != entry.get("sha256"):
            return f"file {path} does not match its recorded SHA-256"
    return ""
