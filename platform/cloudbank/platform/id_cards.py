"""ID-card images: the customer's card reader (or a file standing in for it) sends a picture of
the card during the call; the session's teller and its queue's supervisors fetch it.

    POST sessions/<id>/id_card {image: data URL (JPEG or PNG), side?: front|back}   customer, live call
    GET  sessions/<id>/id_card                                                       teller / supervisor
    GET  sessions/<id>/id_card/<name>                                                teller / supervisor

The image is checked by its magic bytes (not by the data URL's word for it), capped at
MAX_ID_CARD_BYTES decoded, stored under `<data>/id_cards/<session>/` and its SHA-256 goes into the
audit chain (`details["files"]`, so `cloudbank audit verify` catches a changed file). The stored
name is the side plus the image's hash, so sending the same picture again changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from cloudbank.platform import events
from cloudbank.platform.audit import file_sha256
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden, NotFound
from cloudbank.platform.service import AUDIT, CONFIG, REDIS, authenticate
from cloudbank.platform.sessions import LIVE, PNG_MAGIC, Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json
from cloudbank.platform.web_security import streams_body

routes = web.RouteTableDef()

MAX_ID_CARD_BYTES = 2 * 1024 * 1024
# base64 of MAX_ID_CARD_BYTES plus the longest data URL prefix; the body may carry a little more.
MAX_IMAGE_CHARS = 4 * ((MAX_ID_CARD_BYTES + 2) // 3) + 32
MAX_BODY_BYTES = MAX_IMAGE_CHARS + 1024
JPEG_MAGIC = b"\xff\xd8\xff"
TYPES = {"image/jpeg": ("jpg", JPEG_MAGIC), "image/png": ("png", PNG_MAGIC)}
NAME_RE = re.compile(r"^(front|back)-[0-9a-f]{32}\.(jpg|png)$")
FOLDER = Path("id_cards")
# A call needs a front and a back, perhaps a retake or two; more is someone filling the disk.
MAX_CARDS_PER_SESSION = 10


@dataclass(frozen=True)
class IdCardBody:
    image: str = field(metadata=limit(MAX_IMAGE_CHARS))
    side: Literal["front", "back"] = "front"


@dataclass(frozen=True)
class IdCard:
    name: str
    side: str
    content_type: str
    sha256: str
    size: int

    def public(self, session_id: str) -> dict[str, Any]:
        return {"name": self.name, "side": self.side, "content_type": self.content_type,
                "sha256": self.sha256, "bytes": self.size,
                "url": f"/api/sessions/{session_id}/id_card/{self.name}"}


def decode_image(data_url: str) -> tuple[str, bytes]:
    """(content type, bytes) of a JPEG or PNG data URL; BadRequest for anything else."""
    match = re.match(r"^data:(image/(?:jpeg|png));base64,", data_url)
    if match is None:
        raise BadRequest("the image must be a data URL of a JPEG or PNG (data:image/jpeg;base64,...)",
                         field="image")
    try:
        raw = base64.b64decode(data_url[match.end():], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the image is not valid base64", field="image") from None
    if len(raw) > MAX_ID_CARD_BYTES:
        raise BadRequest(f"the image is larger than {MAX_ID_CARD_BYTES // (1024 * 1024)} MB", field="image")
    content_type = match.group(1)
    if not raw.startswith(TYPES[content_type][1]) or len(raw) < 64:
        # Trust the bytes, not the label: a renamed file or a script is refused.
        raise BadRequest(f"the image is not a {content_type.split('/')[1].upper()} file", field="image")
    return content_type, raw


def _store(path: Path, data: bytes) -> str:
    """Write the file unless an identical one is there (off the event loop); its SHA-256 on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")  # two nodes may store the same card
    tmp.write_bytes(data)
    tmp.replace(path)
    return file_sha256(path)


def _count(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if NAME_RE.match(p.name)) if folder.is_dir() else 0


async def send(app: web.Application, session_id: str, claims: Claims, data_url: str, side: str,
               ) -> tuple[IdCard, bool]:
    """Store the customer's card image; returns it and whether it is new (a resend is not)."""
    svc = Sessions(app)
    session, _ = await svc.for_party(session_id, claims, ("customer",))
    if session.state not in LIVE:
        raise Conflict(f"the session is {session.state}; an ID card can only be sent during the call",
                       state=session.state)
    content_type, raw = decode_image(data_url)
    digest = hashlib.sha256(raw).hexdigest()
    name = f"{side}-{digest[:32]}.{TYPES[content_type][0]}"
    rel = FOLDER / session.id / name
    card = IdCard(name, side, content_type, digest, len(raw))
    path = app[CONFIG].data / rel
    if await asyncio.to_thread(path.is_file):
        return card, False
    if await asyncio.to_thread(_count, path.parent) >= MAX_CARDS_PER_SESSION:
        raise Conflict(f"this call has {MAX_CARDS_PER_SESSION} ID-card images already; no more are taken")
    stored = await asyncio.to_thread(_store, path, raw)
    await app[AUDIT].append(actor(claims), "session.id_card", f"session:{session.id}", {
        "side": side, "content_type": content_type, "bytes": len(raw),
        "files": [{"path": str(rel), "sha256": stored}]})
    await events.publish_to_session(app[REDIS], session.id, {
        "type": "id_card", **card.public(session.id), "at": time.time()})
    return card, True


async def _viewed_session(app: web.Application, session_id: str, claims: Claims) -> Session:
    """The session, if the caller is its teller (another teller: 404) or a supervisor of its queue (403)."""
    svc = Sessions(app)
    session = await svc.get(session_id)
    if claims.role == "teller" and claims.sub != session.teller_id:
        raise NotFound("no such session")
    if claims.role == "supervisor" and not await svc.supervises(claims, session.service):
        raise Forbidden("only a supervisor of this queue may see the ID card")
    return session


async def listing(app: web.Application, session_id: str, claims: Claims) -> list[dict[str, Any]]:
    """The session's ID cards in the order they were sent, read from the audit chain (a reloaded
    console, or a supervisor who starts monitoring later, has not seen the events)."""
    session = await _viewed_session(app, session_id, claims)
    cards: dict[str, dict[str, Any]] = {}
    for record in await app[AUDIT].records(subject=f"session:{session.id}"):
        files = record.details.get("files") if record.action == "session.id_card" else None
        if not files:
            continue
        name = Path(str(files[0].get("path", ""))).name
        if NAME_RE.match(name):
            card = IdCard(name, str(record.details.get("side", "")), str(record.details.get("content_type", "")),
                          str(files[0].get("sha256", "")), int(record.details.get("bytes", 0)))
            cards[name] = {**card.public(session.id), "at": record.at}
    return list(cards.values())


async def fetch(app: web.Application, session_id: str, claims: Claims, name: str) -> tuple[Path, str]:
    """The stored file's path and type, for the session's teller or a supervisor of its queue."""
    session = await _viewed_session(app, session_id, claims)
    match = NAME_RE.match(name)
    path = app[CONFIG].data / FOLDER / session.id / name
    if match is None or not await asyncio.to_thread(path.is_file):
        raise NotFound("no such ID card in this session")
    # Seeing a customer's identity document is itself on the chain, as a recording's playback is.
    await app[AUDIT].append(actor(claims), "session.id_card_viewed", f"session:{session.id}", {"name": name})
    return path, "image/jpeg" if match.group(2) == "jpg" else "image/png"


@routes.post("/sessions/{session_id}/id_card")
@streams_body  # its own cap (MAX_BODY_BYTES), larger than the app's: the body limit leaves it to this
async def post_id_card(request: web.Request) -> web.Response:
    """The session's customer sends an ID-card image (JPEG or PNG data URL) during the call."""
    claims = await authenticate(request)
    # This route's own size cap: the app's 1 MB is too small for a card photo.
    request = request.clone(client_max_size=MAX_BODY_BYTES)
    body = await read_json(request, IdCardBody)
    card, new = await send(request.app, request.match_info["session_id"][:64], claims, body.image, body.side)
    return web.json_response({"id_card": card.public(request.match_info["session_id"]), "new": new},
                             status=201 if new else 200)


@routes.get("/sessions/{session_id}/id_card")
async def list_id_cards(request: web.Request) -> web.Response:
    """The session's ID cards (for its teller or a supervisor of its queue), oldest first."""
    claims = await authenticate(request)
    cards = await listing(request.app, request.match_info["session_id"][:64], claims)
    return web.json_response({"id_cards": cards}, headers={"Cache-Control": "no-store"})


@routes.get("/sessions/{session_id}/id_card/{name}")
async def get_id_card(request: web.Request) -> web.Response:
    """The session's teller (or a supervisor of its queue) fetches an ID-card image."""
    claims = await authenticate(request)
    path, content_type = await fetch(request.app, request.match_info["session_id"][:64], claims,
                                     request.match_info["name"][:80])
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-store"})
