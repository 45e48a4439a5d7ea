"""ID check: the session's teller compares the face on an ID-card image the customer sent
(`id_cards`) with the face on a snapshot of the customer's live video (the video node's
`snapshot.taken`), and records their own decision. The face match (`face_match`) is a decision aid:
the teller sees both face crops, the distance and a plain band, and accepts or rejects; nothing is
approved without them.

    POST sessions/<id>/id_check {id_card, snapshot}                 the session's teller, live call -> 201
    POST sessions/<id>/id_check/<check>/decision {decision, note?}  the session's teller, once
    GET  sessions/<id>/id_check                                     teller / supervisor of the queue
    GET  sessions/<id>/id_check/<check>/<id_card|snapshot>.jpg      the face crops, teller / supervisor

Both images are named as stored (an ID card's name, a snapshot's file name) and read back only
if their SHA-256 still matches the audit chain's. The check (both hashes, the distance, the band, the
model, the crops' hashes) and the decision go on the audit chain under the session, and under the
call's open work order (`work_order.id_check`, `work_order.id_check_decision`) when it has one.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from cloudbank.platform import events, pushes
from cloudbank.platform.audit import AuditRecord
from cloudbank.platform.errors import Conflict, NotFound, Unavailable
from cloudbank.platform.face_match import DlibFaceMatcher, FaceMatch, FaceMatcher, FaceMatchError, FaceMatchUnavailable
from cloudbank.platform.id_cards import FOLDER as ID_CARDS
from cloudbank.platform.id_cards import NAME_RE as ID_CARD_NAME
from cloudbank.platform.service import AUDIT, CONFIG, REDIS, authenticate
from cloudbank.platform.sessions import LIVE, Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

FOLDER = Path("id_checks")
CHECK_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SNAPSHOT_NAME = re.compile(r"^[a-z]+-[0-9]{4,9}\.jpg$")
WHICH = ("id_card", "snapshot")
DECIDED_TTL_S = 7 * 24 * 3600


class Matcher:
    """The app's face matcher, made on first use (the models take a second to load and may not be
    installed: then every check is a 503 that says how to install them)."""

    def __init__(self, make: type[DlibFaceMatcher] | None = None) -> None:
        self._make = make or DlibFaceMatcher
        self._matcher: FaceMatcher | None = None

    def get(self) -> FaceMatcher:
        if self._matcher is None:
            try:
                self._matcher = self._make()
            except FaceMatchUnavailable as exc:
                raise Unavailable(str(exc)) from None
        return self._matcher


FACE_MATCHER = web.AppKey("face_matcher", Matcher)


def setup(app: web.Application) -> None:
    app[FACE_MATCHER] = Matcher()
    app.add_routes(routes)


@dataclass(frozen=True)
class CheckBody:
    id_card: str = field(metadata=limit(80))
    snapshot: str = field(metadata=limit(80))


@dataclass(frozen=True)
class DecisionBody:
    decision: Literal["accept", "reject"]
    note: str = field(default="", metadata=limit(500))


@dataclass(frozen=True)
class Image:
    name: str
    path: Path
    sha256: str


def _audited(records: list[AuditRecord], action: str, name: str) -> Image | None:
    """The newest record of `action` whose first file is called `name`: its path (relative to the
    data folder) and SHA-256."""
    for record in reversed(records):  # records() is oldest first
        files = record.details.get("files") if record.action == action else None
        if files and Path(str(files[0].get("path", ""))).name == name:
            return Image(name, Path(str(files[0]["path"])), str(files[0].get("sha256", "")))
    return None


def _read_checked(data: Path, image: Image, what: str) -> bytes:
    path = data / image.path
    try:
        raw = path.read_bytes()
    except OSError:
        raise NotFound(f"the {what} {image.name} is no longer stored") from None
    if hashlib.sha256(raw).hexdigest() != image.sha256:
        raise Conflict(f"the {what} {image.name} changed since it was recorded; it cannot be used as evidence")
    return raw


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as f:  # a check's crops are written once
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def _check_view(session_id: str, details: dict[str, Any], at: float) -> dict[str, Any]:
    """A check as the teller's screen shows it (from its audit record)."""
    cid = str(details["check_id"])
    view: dict[str, Any] = {"id": cid, "at": at, "distance": details.get("distance"), "band": details.get("band"),
                            "model": details.get("model"), "work_order_id": details.get("work_order_id"),
                            "decision": None}
    for which in WHICH:
        part = dict(details.get(which) or {})
        if part.get("face"):
            part["crop_url"] = f"/api/sessions/{session_id}/id_check/{cid}/{which}.jpg"
        view[which] = part
    return view


async def _work_order_id(app: web.Application, session: Session, claims: Claims) -> str | None:
    """The call's open work order, if `work_orders` is there and the call has one."""
    try:
        from cloudbank.platform.work_orders import OPEN, WorkOrders
    except ImportError:
        return None
    open_ones = [wo for wo in await WorkOrders(app).of_session(session.id, claims) if wo.state in OPEN]
    return open_ones[-1].id if open_ones else None


async def run_check(app: web.Application, session_id: str, claims: Claims, id_card: str, snapshot: str,
                    ) -> dict[str, Any]:
    """Compare the named ID card with the named snapshot (off the event loop); audit the result."""
    session, _ = await Sessions(app).for_party(session_id, claims, ("teller",))
    if session.state not in LIVE:
        raise Conflict(f"the session is {session.state}; the ID check is done during the call", state=session.state)
    if not ID_CARD_NAME.match(id_card):
        raise NotFound("no such ID card in this session")
    if not SNAPSHOT_NAME.match(snapshot):
        raise NotFound("no such snapshot in this session")
    records = await app[AUDIT].records(subject=f"session:{session.id}")
    card = _audited(records, "session.id_card", id_card)
    if card is None or card.path != ID_CARDS / session.id / id_card:
        raise NotFound("no such ID card in this session")
    shot = _audited(records, "snapshot.taken", snapshot)
    if shot is None or shot.path.parts[-3:-1] != (session.id, "snapshots"):
        raise NotFound("no such snapshot in this session")
    matcher = app[FACE_MATCHER].get()
    data = app[CONFIG].data
    card_raw = await asyncio.to_thread(_read_checked, data, card, "ID card")
    shot_raw = await asyncio.to_thread(_read_checked, data, shot, "snapshot")
    try:
        result: FaceMatch = await asyncio.to_thread(matcher.match, card_raw, shot_raw)
    except FaceMatchError as exc:
        raise Conflict(str(exc)) from None
    cid = uuid.uuid4().hex
    files: list[dict[str, str]] = []
    parts: dict[str, Any] = {}
    for which, image, face in (("id_card", card, result.first), ("snapshot", shot, result.second)):
        parts[which] = {"name": image.name, "sha256": image.sha256, "face": face.public() if face else None}
        if face is not None:
            rel = FOLDER / session.id / f"{cid}-{which}.jpg"
            digest = await asyncio.to_thread(_write, data / rel, face.crop_jpeg)
            parts[which]["crop_sha256"] = digest
            files.append({"path": str(rel), "sha256": digest})
    work_order_id = await _work_order_id(app, session, claims)
    distance = None if result.distance is None else round(result.distance, 4)
    details: dict[str, Any] = {"check_id": cid, "distance": distance, "band": result.band, "model": result.model,
                               **parts, "work_order_id": work_order_id}
    record = await app[AUDIT].append(actor(claims), "session.id_check", f"session:{session.id}",
                                     {**details, "files": files})
    if work_order_id is not None:
        await app[AUDIT].append(actor(claims), "work_order.id_check", f"work_order:{work_order_id}",
                                {"session": session.id, **details})
    view = _check_view(session.id, details, record.at)
    await events.publish(app[REDIS], f"user:{session.teller_id}",
                         {"type": "id_check", "session_id": session.id, "id_check": view})
    return view


async def decide(app: web.Application, session_id: str, check_id: str, claims: Claims, decision: str,
                 note: str) -> dict[str, Any]:
    """The teller's own decision on a check, once; it is theirs, whatever the band said."""
    session, _ = await Sessions(app).for_party(session_id, claims, ("teller",))
    if session.state not in (*LIVE, "wrap_up"):
        raise Conflict(f"the session is {session.state}; the ID check can no longer be decided", state=session.state)
    checks = await _checks(app, session.id)
    check = checks.get(check_id) if CHECK_ID_RE.match(check_id) else None
    if check is None:
        raise NotFound("no such ID check in this session")
    if check["decision"] is not None:
        raise Conflict(f"this ID check was already decided ({check['decision']['decision']})",
                       decision=check["decision"])
    if not await app[REDIS].set(f"id_check:{check_id}:decided", decision, nx=True, ex=DECIDED_TTL_S):
        raise Conflict("this ID check was already decided")
    details = {"check_id": check_id, "decision": decision, "note": note, "distance": check["distance"],
               "band": check["band"], "id_card_sha256": check["id_card"].get("sha256"),
               "snapshot_sha256": check["snapshot"].get("sha256"), "work_order_id": check["work_order_id"]}
    record = await app[AUDIT].append(actor(claims), "session.id_check_decision", f"session:{session.id}", details)
    if check["work_order_id"]:
        await app[AUDIT].append(actor(claims), "work_order.id_check_decision", f"work_order:{check['work_order_id']}",
                                {"session": session.id, **details})
    check["decision"] = {"decision": decision, "note": note, "by": claims.sub, "at": record.at}
    await events.publish(app[REDIS], f"user:{session.teller_id}",
                         {"type": "id_check", "session_id": session.id, "id_check": check})
    return check


async def _checks(app: web.Application, session_id: str) -> dict[str, dict[str, Any]]:
    """The session's checks with their decisions, oldest first, from the audit chain."""
    checks: dict[str, dict[str, Any]] = {}
    for record in await app[AUDIT].records(subject=f"session:{session_id}"):
        cid = str(record.details.get("check_id", ""))
        if record.action == "session.id_check":
            checks[cid] = _check_view(session_id, record.details, record.at)
        elif record.action == "session.id_check_decision" and cid in checks:
            checks[cid]["decision"] = {"decision": record.details.get("decision"),
                                       "note": record.details.get("note", ""), "by": record.actor, "at": record.at}
    return checks


async def listing(app: web.Application, session_id: str, claims: Claims) -> list[dict[str, Any]]:
    session = await pushes.viewed_session(app, session_id, claims)
    return list((await _checks(app, session.id)).values())


async def crop(app: web.Application, session_id: str, claims: Claims, check_id: str, which: str) -> bytes:
    session = await pushes.viewed_session(app, session_id, claims)
    if not CHECK_ID_RE.match(check_id) or which not in WHICH:
        raise NotFound("no such face crop")
    try:
        return await asyncio.to_thread((app[CONFIG].data / FOLDER / session.id / f"{check_id}-{which}.jpg").read_bytes)
    except OSError:
        raise NotFound("no such face crop") from None


def _sid(request: web.Request) -> str:
    return request.match_info["session_id"][:64]


@routes.post("/sessions/{session_id}/id_check")
async def post_id_check(request: web.Request) -> web.Response:
    """The session's teller compares an ID card's face with a snapshot's."""
    claims = await authenticate(request)
    body = await read_json(request, CheckBody)
    view = await run_check(request.app, _sid(request), claims, body.id_card, body.snapshot)
    return web.json_response({"id_check": view}, status=201)


@routes.post("/sessions/{session_id}/id_check/{check_id}/decision")
async def post_id_check_decision(request: web.Request) -> web.Response:
    """The session's teller accepts or rejects the ID check, once."""
    claims = await authenticate(request)
    body = await read_json(request, DecisionBody)
    view = await decide(request.app, _sid(request), request.match_info["check_id"][:40], claims,
                        body.decision, body.note)
    return web.json_response({"id_check": view})


@routes.get("/sessions/{session_id}/id_check")
async def list_id_checks(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    checks = await listing(request.app, _sid(request), claims)
    return web.json_response({"id_checks": checks}, headers={"Cache-Control": "no-store"})


@routes.get("/sessions/{session_id}/id_check/{check_id}/{which}.jpg")
async def get_face_crop(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    body = await crop(request.app, _sid(request), claims, request.match_info["check_id"][:40],
                      request.match_info["which"][:16])
    return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
