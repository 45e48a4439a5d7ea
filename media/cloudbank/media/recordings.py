"""The recordings catalogue: calls recorded by the video nodes, indexed, searched, verified, exported, purged.

A video node leaves each call in `config.data / "recordings" / <session id>/` with a `manifest.json`
(`cloudbank.video.recorder.finish_recording`: tracks and their segment files, transcripts, each
with its SHA-256, paths relative to `config.data`) and appends a `recording.finished` record naming
those files and the manifest's hash to the audit chain. Here:

- `scan()` indexes manifests into the `recordings` table (service and teller from the platform's
  `sessions` row when there is one);
- `verify()` recomputes every file's SHA-256 against the manifest, and the manifest's own hash
  (and the files it names) against the audit chain's record;
- `export()` writes a zip of the folder, the manifest, the audit records and a verification report;
- `purge_expired()` deletes recordings older than the retention period, keeping the catalogue row.

A manifest is data from disk, so every path in it is checked to stay inside its recording's folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.media.completeness import missing_tracks, status
from cloudbank.platform.audit import AuditChain, AuditRecord, file_sha256, record_hash
from cloudbank.platform.errors import BadRequest, Conflict, NotFound
from cloudbank.platform.records import recordings, sessions, users

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def check_session_id(session_id: str) -> str:
    if not SESSION_ID_RE.match(session_id):
        raise BadRequest("a session id is letters, digits, _ and - (at most 64)", field="session")
    return session_id


@dataclass(frozen=True)
class Recording:
    session_id: str
    manifest_path: str
    manifest_sha256: str
    started_at: float
    ended_at: float | None
    teller_id: str | None
    service: str | None
    parties: dict[str, str]
    files: int
    bytes: int
    state: str  # available | purged
    indexed_at: float
    purged_at: float | None
    missing: list[str] = field(default_factory=list)  # "<party> <kind>" tracks the recording lacks

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScanResult:
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class FileCheck:
    path: str
    ok: bool
    expected: str | None
    actual: str | None
    problem: str = ""


@dataclass
class VerifyReport:
    session_id: str
    ok: bool
    manifest_sha256: str | None
    files: list[FileCheck]
    audit_seq: int | None
    problems: list[str]
    # ok is about integrity (every hash matches); a recording can be intact and still lack a party
    missing: list[str] = field(default_factory=list)
    status: str = "intact"  # intact | incomplete | tampered (see cloudbank.media.completeness)

    def public(self) -> dict[str, Any]:
        return asdict(self)


def manifest_files(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, sha256) of every file a manifest lists: track segments (with `earlier_segments`, those
    a node that died left before the call moved to the node that wrote the manifest), then transcripts."""
    out: list[tuple[str, str]] = []
    for track in manifest.get("tracks") or []:
        for seg in track.get("segments") or []:
            out.append((str(seg.get("path", "")), str(seg.get("sha256", ""))))
    for seg in manifest.get("earlier_segments") or []:
        out.append((str(seg.get("path", "")), str(seg.get("sha256", ""))))
    for tr in manifest.get("transcripts") or []:
        out.append((str(tr.get("path", "")), str(tr.get("sha256", ""))))
    return out


def _row(row: Any) -> Recording:
    return Recording(row.session_id, row.manifest_path, row.manifest_sha256, float(row.started_at), row.ended_at,
                     row.teller_id, row.service, json.loads(row.parties), int(row.files), int(row.bytes), row.state,
                     float(row.indexed_at), row.purged_at, list(json.loads(row.missing or "[]")))


def _client_user(client_id: str | None) -> str | None:
    """'user:<id>' (the events client id of a person) -> '<id>'."""
    if isinstance(client_id, str) and client_id.startswith("user:"):
        return client_id[5:][:64]
    return None


class RecordingsCatalogue:
    """Recordings under `data / "recordings"` and their rows in the records database."""

    def __init__(self, engine: AsyncEngine, data: Path) -> None:
        self.engine = engine
        self.data = data
        self.root = data / "recordings"

    def folder(self, session_id: str) -> Path:
        return self.root / check_session_id(session_id)

    def inside(self, session_id: str, rel_path: str) -> Path | None:
        """A manifest's path (relative to `data`) as a file of this recording, or None if it leads elsewhere."""
        if not rel_path or "\x00" in rel_path or Path(rel_path).is_absolute():
            return None
        folder = self.folder(session_id).resolve()
        path = (self.data / rel_path).resolve()
        return path if path.is_relative_to(folder) and path != folder else None

    # -- indexing ------------------------------------------------------------------------------

    def _read_manifest(self, session_id: str) -> tuple[dict[str, Any], str]:
        path = self.folder(session_id) / MANIFEST
        raw = path.read_bytes()[:MAX_MANIFEST_BYTES + 1]
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ValueError("the manifest is too large")
        manifest = json.loads(raw)
        if not isinstance(manifest, dict) or manifest.get("session_id") != session_id:
            raise ValueError("the manifest does not name this session")
        return manifest, hashlib.sha256(raw).hexdigest()

    def _folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and SESSION_ID_RE.match(p.name) and (p / MANIFEST).is_file())

    async def scan(self, only_new: bool = False) -> ScanResult:
        """Index every recording folder with a manifest; `only_new` skips those already indexed."""
        result = ScanResult()
        names = await asyncio.to_thread(self._folders)
        async with self.engine.connect() as conn:
            known = {r.session_id: (r.manifest_sha256, r.state)
                     for r in (await conn.execute(sa.select(recordings.c.session_id, recordings.c.manifest_sha256,
                                                            recordings.c.state, recordings.c.missing))).all()
                     if r.missing is not None or r.state != "available"}  # NULL: indexed before v5
        for name in names:
            if only_new and name in known:
                continue
            try:
                manifest, digest = await asyncio.to_thread(self._read_manifest, name)
            except (OSError, ValueError) as exc:
                result.unreadable[name] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            if known.get(name) == (digest, "available"):
                result.unchanged += 1
                continue
            await self._index(name, manifest, digest)
            result.indexed.append(name)
        return result

    async def index_one(self, session_id: str) -> bool:
        """Index one recording now (its manifest was just written); False when it has no readable manifest."""
        try:
            manifest, digest = await asyncio.to_thread(self._read_manifest, check_session_id(session_id))
        except (OSError, ValueError, BadRequest) as exc:
            log.warning("recordings: %s has no readable manifest (%s)", session_id, exc)
            return False
        await self._index(session_id, manifest, digest)
        return True

    async def _index(self, session_id: str, manifest: dict[str, Any], digest: str) -> None:
        parties = {str(k)[:32]: str(v)[:128] for k, v in (manifest.get("parties") or {}).items()}
        files = manifest_files(manifest)
        total = 0
        for track in manifest.get("tracks") or []:
            total += sum(int(s.get("bytes") or 0) for s in track.get("segments") or [])
        teller = _client_user(parties.get("teller")) or (str(manifest["teller_id"])[:64]
                                                         if manifest.get("teller_id") else None)
        service = str(manifest["service"])[:64] if manifest.get("service") else None
        async with self.engine.connect() as conn:
            srow = (await conn.execute(sa.select(sessions.c.service, sessions.c.teller_id)
                                       .where(sessions.c.id == session_id))).first()
        if srow is not None:  # the platform's record of the call is the authority on who and what
            service, teller = srow.service, srow.teller_id or teller
        values = dict(manifest_path=str((self.folder(session_id) / MANIFEST).relative_to(self.data)),
                      manifest_sha256=digest, started_at=float(manifest.get("started_at") or 0.0),
                      ended_at=manifest.get("ended_at"), teller_id=teller, service=service,
                      parties=json.dumps(parties), files=len(files) + 1, bytes=total, state="available",
                      indexed_at=time.time(), purged_at=None, missing=json.dumps(missing_tracks(manifest)))
        try:
            async with self.engine.begin() as conn:
                row = (await conn.execute(sa.select(recordings.c.state)
                                          .where(recordings.c.session_id == session_id))).first()
                if row is None:
                    await conn.execute(recordings.insert().values(session_id=session_id, **values))
                elif row.state == "available":  # a purged row stays as the record of the purge
                    await conn.execute(recordings.update().where(recordings.c.session_id == session_id)
                                       .values(**values))
        except IntegrityError:
            pass  # another node indexed it at the same moment

    # -- reading -------------------------------------------------------------------------------

    async def get(self, session_id: str) -> Recording:
        check_session_id(session_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(recordings).where(recordings.c.session_id == session_id))).first()
        if row is None:
            raise NotFound(f"no recording of session {session_id}")
        return _row(row)

    async def search(self, *, session: str | None = None, teller: str | None = None, service: str | None = None,
                     since: float | None = None, until: float | None = None,
                     services_allowed: list[str] | None = None, limit: int = 100) -> list[Recording]:
        """Newest first. `session` matches a prefix; `services_allowed` (a supervisor's queues) limits services."""
        query = sa.select(recordings).order_by(recordings.c.started_at.desc()).limit(limit)
        if session:
            query = query.where(recordings.c.session_id.startswith(session, autoescape=True))
        if teller:  # a user id, or part of a teller's username or display name
            named = sa.select(users.c.id).where(sa.or_(users.c.username.icontains(teller, autoescape=True),
                                                       users.c.display_name.icontains(teller, autoescape=True)))
            query = query.where(sa.or_(recordings.c.teller_id == teller, recordings.c.teller_id.in_(named)))
        if service:
            query = query.where(recordings.c.service == service)
        if since is not None:
            query = query.where(recordings.c.started_at >= since)
        if until is not None:
            query = query.where(recordings.c.started_at < until)
        if services_allowed is not None:
            query = query.where(recordings.c.service.in_(services_allowed))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]

    async def manifest(self, recording: Recording) -> dict[str, Any]:
        self._available(recording)
        try:
            manifest, _ = await asyncio.to_thread(self._read_manifest, recording.session_id)
        except (OSError, ValueError) as exc:
            raise Conflict(f"the recording's manifest cannot be read ({type(exc).__name__}); verify it") from None
        return manifest

    @staticmethod
    def _available(recording: Recording) -> None:
        if recording.state != "available":
            raise Conflict(f"the recording of {recording.session_id} was {recording.state}", state=recording.state)

    async def file(self, recording: Recording, name: str) -> Path:
        """One file of the recording by its name, when the manifest lists it."""
        manifest = await self.manifest(recording)
        for rel, _ in manifest_files(manifest):
            path = self.inside(recording.session_id, rel)
            if path is not None and path.name == name and path.is_file():
                return path
        raise NotFound(f"the recording has no file named {name[:100]}")

    # -- verification ----------------------------------------------------------------------------

    async def audit_record(self, audit: AuditChain, session_id: str) -> AuditRecord | None:
        """The newest `recording.finished` record listing the session's manifest.json: a session whose
        room opened again has a record per room (the later ones list manifest-2.json, ...)."""
        records = await audit.records(subject=f"session:{session_id}")
        finished = [r for r in records if r.action == "recording.finished"]
        manifest_rel = str((self.folder(session_id) / MANIFEST).relative_to(self.data))
        listing = [r for r in finished
                   if any(isinstance(f, dict) and f.get("path") == manifest_rel for f in r.details.get("files") or [])]
        chosen = listing or finished
        return chosen[-1] if chosen else None

    async def verify(self, recording: Recording, audit: AuditChain) -> VerifyReport:
        """Every file against the manifest and the audit chain; the manifest against the audit chain."""
        self._available(recording)
        sid = recording.session_id
        problems: list[str] = []
        record = await self.audit_record(audit, sid)
        audited: dict[str, str] = {}
        if record is None:
            problems.append("the audit chain holds no record of this recording")
        else:
            body = json.dumps(record.details, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            if record_hash(record.seq, record.at, record.actor, record.action, record.subject, body,
                           record.prev_hash) != record.hash:
                problems.append(f"audit record {record.seq} does not match its own hash")
            audited = {str(f.get("path")): str(f.get("sha256")) for f in record.details.get("files") or []}
        manifest_rel = str((self.folder(sid) / MANIFEST).relative_to(self.data))
        manifest_sha: str | None = None
        manifest: dict[str, Any] = {}
        try:
            manifest, manifest_sha = await asyncio.to_thread(self._read_manifest, sid)
        except (OSError, ValueError) as exc:
            problems.append(f"the manifest cannot be read: {type(exc).__name__}: {exc}"[:300])
        if record is not None and manifest_sha is not None and audited.get(manifest_rel) != manifest_sha:
            problems.append("the manifest does not match the hash the audit chain recorded for it")
        expected: dict[str, tuple[str | None, str | None]] = {}  # path -> (manifest's, audit chain's)
        for rel, sha in manifest_files(manifest):
            expected[rel] = (sha, audited.get(rel))
        for rel, sha in audited.items():
            if rel != manifest_rel and rel not in expected:
                expected[rel] = (None, sha)
        checks = await asyncio.to_thread(self._check_files, sid, expected)
        for check in checks:
            if not check.ok:
                problems.append(f"{check.path}: {check.problem}")
        manifest_check = FileCheck(manifest_rel, manifest_sha is not None and manifest_sha == audited.get(manifest_rel),
                                   audited.get(manifest_rel), manifest_sha)
        missing = missing_tracks(manifest)
        return VerifyReport(sid, not problems, manifest_sha, [manifest_check, *checks],
                            record.seq if record is not None else None, problems, missing, status(problems, missing))

    def _check_files(self, sid: str, expected: dict[str, tuple[str | None, str | None]]) -> list[FileCheck]:
        out = []
        for rel, (in_manifest, in_audit) in expected.items():
            want = in_manifest or in_audit
            path = self.inside(sid, rel)
            if path is None:
                out.append(FileCheck(rel, False, want, None, "the path leads outside the recording's folder"))
                continue
            if not path.is_file():
                out.append(FileCheck(rel, False, want, None, "the file is missing"))
                continue
            actual = file_sha256(path)
            if in_manifest is None:
                problem = "the manifest does not list this file the audit chain recorded"
            elif in_audit is not None and in_audit != in_manifest:
                problem = "the manifest's hash differs from the audit chain's"
            elif actual != want:
                problem = "the file's SHA-256 does not match (changed since it was recorded)"
            else:
                problem = ""
            out.append(FileCheck(rel, not problem, want, actual, problem))
        return out

    # -- export and retention ----------------------------------------------------------------------

    async def export(self, recording: Recording, audit: AuditChain, dest: Path) -> VerifyReport:
        """Write a zip of the recording to `dest`: its files, the manifest, its audit records and a
        verification report made now (`verify.json`). Returns that report."""
        report = await self.verify(recording, audit)
        manifest = await self.manifest(recording)
        records = [asdict(r) for r in await audit.records(subject=f"session:{recording.session_id}")]
        await asyncio.to_thread(self._write_zip, recording.session_id, manifest, records, report, dest)
        return report

    def _write_zip(self, sid: str, manifest: dict[str, Any], records: list[dict[str, Any]], report: VerifyReport,
                   dest: Path) -> None:
        folder = self.folder(sid)
        with zipfile.ZipFile(dest, "w") as zf:
            zf.write(folder / MANIFEST, f"{sid}/{MANIFEST}", compress_type=zipfile.ZIP_DEFLATED)
            for rel, _ in manifest_files(manifest):
                path = self.inside(sid, rel)
                if path is not None and path.is_file():
                    # Media is compressed already: stored as it is.
                    zf.write(path, f"{sid}/{path.relative_to(folder.resolve()).as_posix()}",
                             compress_type=zipfile.ZIP_STORED)
            zf.writestr(f"{sid}/audit.json", json.dumps(records, ensure_ascii=False, indent=2),
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(f"{sid}/verify.json", json.dumps(report.public(), ensure_ascii=False, indent=2),
                        compress_type=zipfile.ZIP_DEFLATED)

    async def expired(self, retention_days: int, now: float | None = None) -> list[Recording]:
        if retention_days <= 0:
            return []
        cutoff = (now if now is not None else time.time()) - retention_days * 86400
        end = sa.func.coalesce(recordings.c.ended_at, recordings.c.started_at)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(recordings).where(recordings.c.state == "available", end < cutoff)
                                       .order_by(recordings.c.started_at))).all()
        return [_row(r) for r in rows]

    async def purge(self, recording: Recording) -> bool:
        """Delete a recording's folder and mark its row purged; False when another node did it first."""
        async with self.engine.begin() as conn:
            done = await conn.execute(recordings.update().where(
                recordings.c.session_id == recording.session_id, recordings.c.state == "available",
            ).values(state="purged", purged_at=time.time()))
        if done.rowcount != 1:
            return False
        await asyncio.to_thread(shutil.rmtree, self.folder(recording.session_id), True)
        return True
