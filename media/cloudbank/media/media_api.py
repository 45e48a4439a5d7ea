"""HTTP endpoints for media items, blobs and kiosk playlists (under the media app's `api/`).

Roles: admins upload and list items and build, approve and reject playlists; admins and
supervisors may fetch any blob; a kiosk (device token) reads only its branch's approved playlist
and the blobs in it. Every change is appended to the audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.media.library import Item, Library
from cloudbank.media.playlists import Entry, Playlists, Version
from cloudbank.media.probe import Durations
from cloudbank.media.store import BlobStore, check_name, check_sha256
from cloudbank.platform import openapi
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import branches, users
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, authenticate
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json
from cloudbank.platform.web_security import streams_body

routes = web.RouteTableDef()
DURATIONS = web.AppKey("media_durations", Durations)

PLAYABLE = ("video", "image")
MAX_DURATION_S = 3600.0


def blob_store(app: web.Application) -> BlobStore:
    config = app[CONFIG]
    return BlobStore(config.data / "media", config.max_upload_bytes)


def blob_url(request: web.Request, sha256: str) -> str:
    """The blob's path on this server, wherever the media app is mounted (/media/ under `cloudbank up`)."""
    return str(request.app.router["blob"].url_for(sha256=sha256))


async def item_json(request: web.Request, item: Item) -> dict[str, Any]:
    """An item as the API shows it; a video also has `duration_s`, probed from the file (None if unreadable)."""
    body = item.public("")
    body["url"] = blob_url(request, item.sha256)
    if item.kind == "video":
        body["duration_s"] = await request.app[DURATIONS].get(item.sha256, blob_store(request.app).path(item.sha256))
    return body


async def display_names(request: web.Request, ids: set[str]) -> dict[str, str]:
    """Display names of the admins who made or decided playlist versions (a checker sees who proposed)."""
    if not ids:
        return {}
    async with request.app[ENGINE].connect() as conn:
        rows = await conn.execute(sa.select(users.c.id, users.c.display_name, users.c.username)
                                  .where(users.c.id.in_(ids)))
        return {str(r.id): f"{r.display_name} ({r.username})" for r in rows}


async def admin(request: web.Request) -> Claims:
    return await authenticate(request, roles=("admin",))


async def kiosk_branch(request: web.Request) -> str:
    """The calling kiosk's branch, from its device record (a revoked device is refused)."""
    claims = await authenticate(request, roles=("device",))
    device = await Directory(request.app[ENGINE]).get_device(claims.sub)
    if device.revoked:
        raise Forbidden("this device was revoked; enrol it again with a new code")
    return device.branch_id


def query_only(request: web.Request, *allowed: str) -> None:
    unknown = sorted(set(request.query) - {*allowed, "token"})
    if unknown:
        raise BadRequest(f"unknown query parameter '{unknown[0][:64]}'", field=unknown[0][:64])


async def no_body(request: web.Request) -> None:
    """Actions without parameters take no body, or an empty JSON object."""
    if request.can_read_body:
        await read_json(request, Empty)


@dataclass(frozen=True)
class Empty:
    pass


# -- items and blobs ---------------------------------------------------------------------------


@routes.post("/api/items")
@streams_body  # to the store, under max_upload_bytes
async def upload(request: web.Request) -> web.Response:
    """Upload one file as the raw body (`?name=<file name>`); its type is checked by its content."""
    claims = await admin(request)
    query_only(request, "name")
    name = check_name(request.query.get("name", ""))
    store = blob_store(request.app)
    if request.content_length is not None and request.content_length > store.max_bytes:
        raise TooLarge(f"the upload is larger than the limit of {store.max_bytes} bytes", limit=store.max_bytes)
    declared = request.content_type if request.headers.get("Content-Type") else None
    blob = await store.put(request.content.iter_chunked(1 << 16), declared)
    item, created = await Library(request.app[ENGINE]).add(blob, name, claims.sub)
    await request.app[AUDIT].append(claims.sub, "media.uploaded", f"media:{item.id}", {
        "sha256": item.sha256, "name": name, "size": item.size, "content_type": item.content_type,
        "deduplicated": not created})
    return web.json_response({"item": await item_json(request, item), "deduplicated": not created},
                             status=201 if created else 200)


@routes.get("/api/items")
async def list_items(request: web.Request) -> web.Response:
    await admin(request)
    query_only(request, "kind")
    kind = request.query.get("kind")
    if kind is not None and kind not in ("video", "image", "document"):
        raise BadRequest("kind must be video, image or document", field="kind")
    items = await Library(request.app[ENGINE]).list(kind)
    return web.json_response({"items": [await item_json(request, i) for i in items]})


@routes.get("/api/items/{item_id}")
async def get_item(request: web.Request) -> web.Response:
    await admin(request)
    item = await Library(request.app[ENGINE]).get(request.match_info["item_id"][:64])
    return web.json_response({"item": await item_json(request, item)})


@routes.delete("/api/items/{item_id}")
async def delete_item(request: web.Request) -> web.Response:
    """Delete an item and its bytes; refused (409) while a playlist's approved or pending version uses it."""
    claims = await admin(request)
    library = Library(request.app[ENGINE])
    item = await library.get(request.match_info["item_id"][:64])
    using = [(p, v) for p, versions in await Playlists(request.app[ENGINE]).list() for v in versions
             if v.state in ("approved", "pending") and any(e.item_id == item.id for e in v.items)]
    if using:
        where = "; ".join(f"{p.name} ({p.branch_id}), version {v.version} "
                          f"{'played by kiosks' if v.state == 'approved' else 'waiting for approval'}"
                          for p, v in using)
        raise Conflict(f"{item.name} is in use: {where}. Take it out of that playlist (and have the change "
                       f"approved) first", playlists=sorted({p.id for p, _ in using}))
    if not await library.delete(item.id):
        raise NotFound(f"no media item {item.id}")
    blob_store(request.app).delete(item.sha256)
    await request.app[AUDIT].append(claims.sub, "media.deleted", f"media:{item.id}", {
        "sha256": item.sha256, "name": item.name, "size": item.size})
    return web.json_response({"deleted": item.id})


@routes.get("/api/blobs/{sha256}", name="blob")
async def get_blob(request: web.Request) -> web.StreamResponse:
    """Admins and supervisors: any blob. A kiosk: only blobs in its branch's approved playlist."""
    claims = await authenticate(request)
    sha = check_sha256(request.match_info["sha256"])
    library = Library(request.app[ENGINE])
    item = await library.by_sha(sha)
    if claims.role == "device":
        served = await Playlists(request.app[ENGINE]).approved_for_branch(await kiosk_branch(request))
        ids = {e.item_id for e in served[1].items} if served else set()
        if item is None or item.id not in ids:
            # Same answer as an unknown blob: a kiosk learns nothing about other branches' media.
            raise NotFound("no such blob in this kiosk's playlist")
    path = blob_store(request.app).path(sha)
    if item is None or not path.is_file():
        raise NotFound("no such blob")
    return web.FileResponse(path, headers={
        "Content-Type": item.content_type, "Cache-Control": "private, max-age=31536000, immutable",
        "Content-Disposition": "inline", "ETag": f'"{sha}"'})


# -- playlists ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryBody:
    item_id: str = field(metadata=limit(64))
    duration_s: float = 10.0


@dataclass(frozen=True)
class NewPlaylistBody:
    branch: str = field(metadata=limit(64))
    name: str = field(metadata=limit(200))
    items: list[EntryBody] = field(default_factory=list)


@dataclass(frozen=True)
class ProposeBody:
    items: list[EntryBody]


@dataclass(frozen=True)
class RejectBody:
    reason: str = field(default="", metadata=limit(500))


async def checked_entries(request: web.Request, entries: list[EntryBody]) -> list[Entry]:
    """Entries of a proposed version: known items a kiosk can play, each for 1 s to an hour."""
    if not entries:
        raise BadRequest("a playlist needs at least one item", field="items")
    found = await Library(request.app[ENGINE]).many([e.item_id for e in entries])
    out = []
    for i, e in enumerate(entries):
        item = found.get(e.item_id)
        if item is None:
            raise BadRequest(f"items[{i}]: no media item {e.item_id}", field=f"items[{i}].item_id")
        if item.kind not in PLAYABLE:
            raise BadRequest(f"items[{i}]: a {item.kind} cannot play on a kiosk (videos and images only)",
                             field=f"items[{i}].item_id")
        if not 1.0 <= e.duration_s <= MAX_DURATION_S:
            raise BadRequest(f"items[{i}]: the duration must be 1 to {int(MAX_DURATION_S)} seconds",
                             field=f"items[{i}].duration_s")
        out.append(Entry(e.item_id, e.duration_s))
    return out


def version_number(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest("the version is a whole number", field="version")
    return int(raw)


def playlist_json(playlist: Any, versions: list[Version], names: dict[str, str] | None = None) -> dict[str, Any]:
    """`names`: user id -> display name; each version then says who made (`made_by_name`) and decided it."""
    approved = [v.version for v in versions if v.state == "approved"]
    pending = [v.version for v in versions if v.state == "pending"]
    shown = [{**v.public(), "made_by_name": (names or {}).get(v.made_by),
              "decided_by_name": (names or {}).get(v.decided_by or "")} for v in versions]
    return {**playlist.public(), "approved_version": approved[-1] if approved else None,
            "pending_version": pending[-1] if pending else None, "versions": shown}


async def people_of(request: web.Request, versions: list[Version]) -> dict[str, str]:
    return await display_names(request, {v.made_by for v in versions} | {v.decided_by for v in versions
                                                                            if v.decided_by})


@routes.get("/api/branches")
async def list_branches(request: web.Request) -> web.Response:
    await admin(request)
    async with request.app[ENGINE].connect() as conn:
        rows = (await conn.execute(sa.select(branches.c.id, branches.c.name).order_by(branches.c.id))).all()
    return web.json_response({"branches": [{"id": r.id, "name": r.name} for r in rows]})


@routes.get("/api/playlists")
async def list_playlists(request: web.Request) -> web.Response:
    await admin(request)
    listed = await Playlists(request.app[ENGINE]).list()
    names = await people_of(request, [v for _, vs in listed for v in vs])
    return web.json_response({"playlists": [playlist_json(p, vs, names) for p, vs in listed]})


@routes.post("/api/playlists")
async def create_playlist(request: web.Request) -> web.Response:
    """A branch's playlist and its first version (pending until another admin approves it)."""
    claims = await admin(request)
    body = await read_json(request, NewPlaylistBody)
    name = body.name.strip()
    if not name:
        raise BadRequest("the playlist needs a name", field="name")
    entries = await checked_entries(request, body.items)
    store = Playlists(request.app[ENGINE])
    playlist, version = await store.create(body.branch, name, entries, claims.sub)
    await request.app[AUDIT].append(claims.sub, "playlist.proposed", f"playlist:{playlist.id}", {
        "branch": playlist.branch_id, "version": 1, "items": [e.item_id for e in entries]})
    return web.json_response({"playlist": playlist_json(playlist, [version])}, status=201)


@routes.get("/api/playlists/{playlist_id}")
async def get_playlist(request: web.Request) -> web.Response:
    await admin(request)
    store = Playlists(request.app[ENGINE])
    playlist = await store.get(request.match_info["playlist_id"][:64])
    versions = await store.versions(playlist.id)
    return web.json_response({"playlist": playlist_json(playlist, versions, await people_of(request, versions))})


@routes.post("/api/playlists/{playlist_id}/versions")
async def propose(request: web.Request) -> web.Response:
    claims = await admin(request)
    store = Playlists(request.app[ENGINE])
    playlist = await store.get(request.match_info["playlist_id"][:64])
    body = await read_json(request, ProposeBody)
    entries = await checked_entries(request, body.items)
    version = await store.propose(playlist.id, entries, claims.sub)
    await request.app[AUDIT].append(claims.sub, "playlist.proposed", f"playlist:{playlist.id}", {
        "branch": playlist.branch_id, "version": version.version, "items": [e.item_id for e in entries]})
    return web.json_response({"version": version.public()}, status=201)


@routes.post("/api/playlists/{playlist_id}/versions/{version}/approve")
async def approve(request: web.Request) -> web.Response:
    """Maker-checker: the admin who proposed a version cannot approve it."""
    claims = await admin(request)
    store = Playlists(request.app[ENGINE])
    playlist = await store.get(request.match_info["playlist_id"][:64])
    number = version_number(request)
    await no_body(request)
    version = await store.approve(playlist.id, number, claims.sub)
    await request.app[AUDIT].append(claims.sub, "playlist.approved", f"playlist:{playlist.id}", {
        "branch": playlist.branch_id, "version": number, "made_by": version.made_by})
    return web.json_response({"version": version.public()})


@routes.post("/api/playlists/{playlist_id}/versions/{version}/reject")
async def reject(request: web.Request) -> web.Response:
    claims = await admin(request)
    store = Playlists(request.app[ENGINE])
    playlist = await store.get(request.match_info["playlist_id"][:64])
    number = version_number(request)
    body = await read_json(request, RejectBody) if request.can_read_body else RejectBody()
    version = await store.reject(playlist.id, number, claims.sub, body.reason.strip())
    await request.app[AUDIT].append(claims.sub, "playlist.rejected", f"playlist:{playlist.id}", {
        "branch": playlist.branch_id, "version": number, "reason": body.reason.strip()})
    return web.json_response({"version": version.public()})


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """This document: every route of the media API (library, playlists, recordings, settings)."""
    return web.json_response(openapi.document(request.app, "cloudbank media platform", "/media", only="/api/"))


@routes.get("/api/kiosk/playlist")
async def kiosk_playlist(request: web.Request) -> web.Response:
    """The calling kiosk's branch playlist, approved version only (docs/protocol.md "Kiosk playlist").
    A branch with nothing approved gets an empty playlist (version 0): the kiosk shows no media."""
    branch = await kiosk_branch(request)
    query_only(request)
    served = await Playlists(request.app[ENGINE]).approved_for_branch(branch)
    if served is None:
        return web.json_response({"playlist": {"id": f"none-{branch}", "version": 0, "items": []}})
    playlist, version = served
    found = await Library(request.app[ENGINE]).many([e.item_id for e in version.items])
    items = []
    for entry in version.items:
        item = found[entry.item_id]
        items.append({"id": item.id, "kind": item.kind, "name": item.name, "sha256": item.sha256,
                      "size": item.size, "url": blob_url(request, item.sha256), "duration_s": entry.duration_s})
    return web.json_response({"playlist": {"id": playlist.id, "version": version.version, "items": items}},
                             headers={"Cache-Control": "no-store"})
