"""HTTP endpoints for the recordings catalogue and retention (under the media app's `api/`).

Admins and supervisors search, view, play and verify recordings (a supervisor who oversees some
queues sees only those services' calls); only admins export, rescan, set the retention and purge.
Every access to a recording is appended to the audit chain, as the architecture demands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.media.media_api import no_body, query_only
from cloudbank.media.recordings import Recording, RecordingsCatalogue, check_session_id
from cloudbank.media.retention import MAX_RETENTION_DAYS, load_settings, purge_expired, set_retention
from cloudbank.platform.errors import BadRequest, NotFound
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import users
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, authenticate
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import read_json

routes = web.RouteTableDef()

MAX_RESULTS = 500


def catalogue(app: web.Application) -> RecordingsCatalogue:
    return RecordingsCatalogue(app[ENGINE], app[CONFIG].data)


async def allowed_services(request: web.Request, claims: Claims) -> list[str] | None:
    """None: every service. A supervisor with queues: only those."""
    if claims.role != "supervisor":
        return None
    user = await Directory(request.app[ENGINE]).get_user(claims.sub)
    return list(user.queues) or None


async def recording_for(request: web.Request, claims: Claims) -> Recording:
    """The recording named in the URL, if the caller may see it (404 otherwise, as for an unknown one)."""
    recording = await catalogue(request.app).get(check_session_id(request.match_info["session_id"]))
    allowed = await allowed_services(request, claims)
    if allowed is not None and recording.service not in allowed:
        raise NotFound(f"no recording of session {recording.session_id}")
    return recording


def _day(name: str, raw: str) -> float:
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} is a date like 2026-01-31", field=name) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _short(name: str, raw: str | None, max_len: int = 64) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > max_len or "\x00" in raw:
        raise BadRequest(f"{name} is longer than {max_len} characters", field=name)
    return raw


@routes.get("/api/recordings")
async def search(request: web.Request) -> web.Response:
    """`?session=<prefix>&teller=<user id>&service=<code>&from=<YYYY-MM-DD>&to=<YYYY-MM-DD>&limit=<n>`
    (dates in UTC, `to` inclusive)."""
    claims = await authenticate(request)
    query_only(request, "session", "teller", "service", "from", "to", "limit")
    q = request.query
    raw_limit = q.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_RESULTS:
        raise BadRequest(f"limit is a whole number from 1 to {MAX_RESULTS}", field="limit")
    since = _day("from", q["from"]) if q.get("from") else None
    until = _day("to", q["to"]) + 86400 if q.get("to") else None
    found = await catalogue(request.app).search(
        session=_short("session", q.get("session")), teller=_short("teller", q.get("teller")),
        service=_short("service", q.get("service")), since=since, until=until,
        services_allowed=await allowed_services(request, claims), limit=int(raw_limit))
    await request.app[AUDIT].append(claims.sub, "recordings.searched", "recordings", {
        "query": {k: v for k, v in q.items() if k != "token"}, "results": len(found)})
    names = await _teller_names(request.app, {r.teller_id for r in found if r.teller_id})
    return web.json_response({"recordings": [{**r.public(), "teller_name": names.get(r.teller_id or "")}
                                             for r in found]})


async def _teller_names(app: web.Application, ids: set[str]) -> dict[str, str]:
    """Display names for the list: an admin looking for a call knows the teller, not their user id."""
    if not ids:
        return {}
    async with app[ENGINE].connect() as conn:
        rows = await conn.execute(sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(ids)))
        return {str(row.id): str(row.display_name) for row in rows}


@routes.post("/api/recordings/scan")
async def scan(request: web.Request) -> web.Response:
    """Index new and changed manifests now (a background job also picks up new ones)."""
    claims = await authenticate(request)
    await no_body(request)
    result = await catalogue(request.app).scan()
    await request.app[AUDIT].append(claims.sub, "recordings.scanned", "recordings", {
        "indexed": len(result.indexed), "unreadable": sorted(result.unreadable)[:50]})
    return web.json_response({"indexed": result.indexed, "unchanged": result.unchanged,
                              "unreadable": result.unreadable})


@routes.get("/api/recordings/{session_id}")
async def view(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    recording = await recording_for(request, claims)
    manifest = await catalogue(request.app).manifest(recording)
    await request.app[AUDIT].append(claims.sub, "recording.viewed", f"session:{recording.session_id}")
    return web.json_response({"recording": recording.public(), "manifest": manifest})


@routes.post("/api/recordings/{session_id}/verify")
async def verify(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    recording = await recording_for(request, claims)
    report = await catalogue(request.app).verify(recording, request.app[AUDIT])
    await request.app[AUDIT].append(claims.sub, "recording.verified", f"session:{recording.session_id}", {
        "ok": report.ok, "problems": report.problems[:20]})
    return web.json_response({"report": report.public()})


@routes.get("/api/recordings/{session_id}/files/{name}")
async def play(request: web.Request) -> web.StreamResponse:
    """One file of a recording (a segment to play, a transcript); `?token=` works for <video src>."""
    claims = await authenticate(request, url_token=True)  # a <video src>
    recording = await recording_for(request, claims)
    path = await catalogue(request.app).file(recording, request.match_info["name"][:200])
    if _starts_the_file(request):
        # Once per playing of a file: a <video> fetches it in many ranges (buffering, seeks), and a
        # record per range would bury who watched what under noise.
        await request.app[AUDIT].append(claims.sub, "recording.played", f"session:{recording.session_id}",
                                        {"file": path.name})
    types = {".webm": "video/webm", ".mkv": "video/x-matroska", ".vtt": "text/vtt", ".json": "application/json"}
    return web.FileResponse(path, headers={"Content-Type": types.get(path.suffix, "application/octet-stream"),
                                           "Cache-Control": "private, no-store"})


def _starts_the_file(request: web.Request) -> bool:
    """No Range, or one from byte 0: a first fetch, not the continuation of one."""
    ranges = request.headers.get("Range", "").strip()
    return not ranges or ranges.replace(" ", "").startswith("bytes=0-")


@routes.get("/api/recordings/{session_id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    """A zip of the recording: files, manifest, audit records and a verification report made now."""
    claims = await authenticate(request)
    recording = await recording_for(request, claims)
    tmp_dir = request.app[CONFIG].data / "media" / "tmp"
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    dest = tmp_dir / f"export-{secrets.token_hex(8)}.zip"
    try:
        report = await catalogue(request.app).export(recording, request.app[AUDIT], dest)
        digest, size = await asyncio.to_thread(_digest, dest)
        await request.app[AUDIT].append(claims.sub, "recording.exported", f"session:{recording.session_id}", {
            "zip_sha256": digest, "bytes": size, "verified": report.ok})
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Length": str(size), "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="recording-{recording.session_id}.zip"',
            "X-Recording-Verified": "true" if report.ok else "false", "X-Zip-SHA256": digest})
        await response.prepare(request)
        with dest.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(dest.unlink, True)


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# -- settings and retention ----------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsBody:
    retention_days: int


def settings_json(settings: Any) -> dict[str, Any]:
    return {"retention_days": settings.retention_days, "updated_by": settings.updated_by,
            "updated_at": settings.updated_at}


@routes.get("/api/settings")
async def get_settings(request: web.Request) -> web.Response:
    await authenticate(request)
    return web.json_response({"settings": settings_json(await load_settings(request.app[ENGINE]))})


@routes.put("/api/settings")
async def put_settings(request: web.Request) -> web.Response:
    """`retention_days`: keep recordings this many days (0 keeps them forever)."""
    claims = await authenticate(request)
    body = await read_json(request, SettingsBody)
    if not 0 <= body.retention_days <= MAX_RETENTION_DAYS:
        raise BadRequest(f"retention_days is 0 (keep forever) to {MAX_RETENTION_DAYS}", field="retention_days")
    before = await load_settings(request.app[ENGINE])
    settings = await set_retention(request.app[ENGINE], body.retention_days, claims.sub)
    await request.app[AUDIT].append(claims.sub, "media.settings", "media:settings", {
        "retention_days": body.retention_days, "was": before.retention_days})
    return web.json_response({"settings": settings_json(settings)})


@routes.post("/api/retention/purge")
async def purge(request: web.Request) -> web.Response:
    """Run the purge job now (it also runs in the background)."""
    claims = await authenticate(request)
    await no_body(request)
    purged = await purge_expired(catalogue(request.app), request.app[AUDIT], request.app[ENGINE], claims.sub)
    return web.json_response({"purged": purged})
