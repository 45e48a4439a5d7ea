"""Pushes: the teller sends the customer's screen a form, a document or a signature request during
the call; the customer answers each once (accept or decline, a form's values, a signature); the
teller sees the answer and, after a reload, the call's pushes and answers again.

    POST sessions/<id>/push {kind, title, text?, fields?, url?}           the session's teller, live call
    POST sessions/<id>/responses {push_id, answer, values?, signature?}   the session's customer, once
    GET  sessions/<id>/pushes                                              teller / supervisor of the queue
    GET  sessions/<id>/pushes/<push_id>/signature                          teller / supervisor of the queue

A push and its answer live in the Redis hash `session:<id>:pushes` (PUSH_TTL_S) as JSON; both are
also appended to the audit chain. A signature is a PNG stored under
`<data>/signatures/<session>/<push id>.png` with its SHA-256 on the chain (`details["files"]`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform import events
from cloudbank.platform.audit import file_sha256
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden, NotFound
from cloudbank.platform.service import AUDIT, CONFIG, REDIS, authenticate
from cloudbank.platform.sessions import LIVE, PNG_MAGIC, Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

PUSH_TTL_S = 24 * 3600  # a call's pushes and answers outlive any call
MAX_SIGNATURE_BYTES = 256 * 1024
MAX_SIGNATURE_CHARS = 360_000  # base64 of MAX_SIGNATURE_BYTES plus the data URL prefix
PUSH_ID_RE = re.compile(r"^[0-9a-f]{32}$")
SIGNATURES = Path("signatures")


class AnswerHook(Protocol):
    """Told of answers to pushes (the work orders fill themselves from theirs): `check` may refuse an
    answer before it is taken, `answered` hears it once it is stored."""

    async def check(self, app: web.Application, session: Session, push: dict[str, Any], answer: str,
                    values: dict[str, str]) -> None: ...

    async def answered(self, app: web.Application, session: Session, push: dict[str, Any],
                       claims: Claims) -> None: ...


ANSWER_HOOKS: web.AppKey[list[AnswerHook]] = web.AppKey("push_answer_hooks")


@dataclass(frozen=True)
class FormField:
    name: str = field(metadata=limit(64))
    label: str = field(metadata=limit(200))
    kind: Literal["text", "number", "date", "checkbox", "select"] = "text"
    required: bool = False
    value: str = field(default="", metadata=limit(2000))
    options: list[str] = field(default_factory=list, metadata=limit(200))


@dataclass(frozen=True)
class PushBody:
    kind: Literal["form", "document", "signature_request"]
    title: str = field(metadata=limit(200))
    fields: list[FormField] | None = None
    url: str | None = field(default=None, metadata=limit(1000))
    text: str = field(default="", metadata=limit(4000))


@dataclass(frozen=True)
class ResponseBody:
    push_id: str = field(metadata=limit(64))
    answer: Literal["accept", "decline"]
    values: dict[str, str] = field(default_factory=dict)
    signature: str | None = field(default=None, metadata=limit(MAX_SIGNATURE_CHARS))


def _key(session_id: str) -> str:
    return f"session:{session_id}:pushes"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def public(session_id: str, push: dict[str, Any]) -> dict[str, Any]:
    """A stored push as the teller sees it: with `signature_url` once a signature came."""
    out = dict(push)
    if push.get("signature_sha256"):
        out["signature_url"] = f"/api/sessions/{session_id}/pushes/{push['push_id']}/signature"
    return out


def _store(path: Path, data: bytes) -> str:
    """Write a file (off the event loop) and return the SHA-256 of what is on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return file_sha256(path)


def check_answer(push: dict[str, Any], answer: str, values: dict[str, str], signature: str | None,
                 ) -> bytes | None:
    """Refuse answers that do not fit the push; returns the signature PNG's bytes when one is due."""
    if push["kind"] == "form" and answer == "accept":
        fields = {f["name"]: f for f in push.get("fields") or []}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise BadRequest(f"the form has no field '{unknown[0][:64]}'", field="values")
        missing = [n for n, f in fields.items() if f.get("required") and not values.get(n, "").strip()]
        if missing:
            raise BadRequest(f"the form's field '{missing[0]}' is required", field="values")
    elif values:
        raise BadRequest("values only answer an accepted form", field="values")
    if push["kind"] != "signature_request" or answer != "accept":
        if signature is not None:
            raise BadRequest("a signature only answers an accepted signature request", field="signature")
        return None
    if signature is None:
        raise BadRequest("accepting a signature request needs the signature", field="signature")
    prefix = "data:image/png;base64,"
    if not signature.startswith(prefix):
        raise BadRequest("the signature must be a data URL of a PNG (data:image/png;base64,...)", field="signature")
    try:
        png = base64.b64decode(signature[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the signature is not valid base64", field="signature") from None
    if len(png) > MAX_SIGNATURE_BYTES:
        raise BadRequest(f"the signature is larger than {MAX_SIGNATURE_BYTES // 1024} KB", field="signature")
    if not png.startswith(PNG_MAGIC) or len(png) < 67:
        raise BadRequest("the signature is not a PNG image", field="signature")
    return png


async def push(app: web.Application, session_id: str, claims: Claims, data: dict[str, Any]) -> dict[str, Any]:
    """The session's teller sends something to the customer's screen during the call."""
    session, _ = await Sessions(app).for_party(session_id, claims, ("teller",))
    if session.state not in LIVE:
        raise Conflict(f"the session is {session.state}; nothing can be pushed", state=session.state)
    redis: Redis = app[REDIS]
    item = {**data, "push_id": uuid.uuid4().hex, "state": "pending", "at": time.time()}
    await redis.hset(_key(session.id), item["push_id"], json.dumps(item, ensure_ascii=False))
    await redis.expire(_key(session.id), PUSH_TTL_S)
    await app[AUDIT].append(actor(claims), "session.push", f"session:{session.id}",
                            {"push_id": item["push_id"], "kind": item["kind"], "title": item["title"]})
    await events.publish(redis, session.customer, {"type": "push", "session_id": session.id, **item})
    return item


async def respond(app: web.Application, session_id: str, claims: Claims, push_id: str, answer: str,
                  values: dict[str, str], signature: str | None) -> dict[str, Any]:
    """The customer answers a push once; a signature is a PNG data URL, stored and hashed."""
    session, _ = await Sessions(app).for_party(session_id, claims, ("customer",))
    if session.state not in LIVE:
        raise Conflict(f"the session is {session.state}; it takes no answers", state=session.state)
    redis: Redis = app[REDIS]
    key = _key(session.id)
    raw = await redis.hget(key, push_id) if PUSH_ID_RE.match(push_id) else None
    if raw is None:
        raise NotFound("no such push in this session")
    item: dict[str, Any] = json.loads(_s(raw))
    png = check_answer(item, answer, values, signature)
    for hook in app.get(ANSWER_HOOKS, []):
        await hook.check(app, session, item, answer, values)
    # Single answer per push, even with two nodes racing: the first SET NX wins.
    if not await redis.set(f"{key}:{push_id}:answered", "1", nx=True, ex=PUSH_TTL_S):
        raise Conflict("this push was answered already")
    details: dict[str, Any] = {"push_id": push_id, "kind": item["kind"], "answer": answer, "values": values}
    if png is not None:
        rel = SIGNATURES / session.id / f"{push_id}.png"
        details["files"] = [{"path": str(rel),
                             "sha256": await asyncio.to_thread(_store, app[CONFIG].data / rel, png)}]
    item.update(state="answered", answer=answer, values=values, answered_at=time.time(),
                signature_sha256=details["files"][0]["sha256"] if png is not None else None)
    await redis.hset(key, push_id, json.dumps(item, ensure_ascii=False))
    await app[AUDIT].append(actor(claims), "session.push_response", f"session:{session.id}", details)
    for hook in app.get(ANSWER_HOOKS, []):
        await hook.answered(app, session, item, claims)
    shown = public(session.id, item)
    # The teller's screen names the push by its title and shows each field by its label.
    await events.publish(redis, f"user:{session.teller_id}", {
        "type": "push.response", "session_id": session.id, "push_id": push_id, "kind": item["kind"],
        "title": item["title"], "fields": item.get("fields") or [], "answer": answer, "values": values,
        "signature_sha256": item["signature_sha256"], "signature_url": shown.get("signature_url"),
        "answered_at": item["answered_at"]})
    return item


async def viewed_session(app: web.Application, session_id: str, claims: Claims) -> Session:
    """The session, if the caller is its teller (another teller: 404) or a supervisor of its queue (403)."""
    svc = Sessions(app)
    session = await svc.get(session_id)
    if claims.role == "teller" and claims.sub != session.teller_id:
        raise NotFound("no such session")
    if claims.role == "supervisor" and not await svc.supervises(claims, session.service):
        raise Forbidden("only a supervisor of this queue may see this call")
    return session


async def listing(app: web.Application, session_id: str, claims: Claims) -> list[dict[str, Any]]:
    """The session's pushes with their answers, oldest first (a reloaded console rebuilds from this)."""
    session = await viewed_session(app, session_id, claims)
    stored = await app[REDIS].hgetall(_key(session.id))
    items = [json.loads(_s(v)) for v in stored.values()]
    return [public(session.id, p) for p in sorted(items, key=lambda p: float(p.get("at", 0)))]


async def signature_file(app: web.Application, session_id: str, claims: Claims, push_id: str) -> Path:
    """The stored signature of an answered push, for the session's teller or a supervisor of its queue."""
    session = await viewed_session(app, session_id, claims)
    path = app[CONFIG].data / SIGNATURES / session.id / f"{push_id}.png"
    if not PUSH_ID_RE.match(push_id) or not await asyncio.to_thread(path.is_file):
        raise NotFound("no signature for this push")
    await app[AUDIT].append(actor(claims), "session.signature_viewed", f"session:{session.id}",
                            {"push_id": push_id})
    return path


@routes.post("/sessions/{session_id}/push")
async def post_push(request: web.Request) -> web.Response:
    """Push a form, a document or a signature request to the customer's screen."""
    claims = await authenticate(request)
    body = await read_json(request, PushBody)
    if body.kind == "form" and not body.fields:
        raise BadRequest("a form needs fields", field="fields")
    if body.kind != "form" and body.fields is not None:
        raise BadRequest("only a form has fields", field="fields")
    if body.kind == "document" and not body.url:
        raise BadRequest("a document needs a url", field="url")
    if body.url is not None and not body.url.startswith(("https://", "http://", "/")):
        raise BadRequest("url must be http(s) or a path on this server", field="url")
    if body.fields and len({f.name for f in body.fields}) != len(body.fields):
        raise BadRequest("form field names must be unique", field="fields")
    data: dict[str, Any] = {"kind": body.kind, "title": body.title, "text": body.text}
    if body.fields is not None:
        data["fields"] = [{"name": f.name, "label": f.label, "kind": f.kind, "required": f.required,
                           "value": f.value, "options": f.options} for f in body.fields]
    if body.url is not None:
        data["url"] = body.url
    sid = request.match_info["session_id"][:64]
    return web.json_response({"push": await push(request.app, sid, claims, data)}, status=201)


@routes.post("/sessions/{session_id}/responses")
async def post_response(request: web.Request) -> web.Response:
    """The customer answers a push (once); a signature is a PNG data URL."""
    claims = await authenticate(request)
    body = await read_json(request, ResponseBody)
    result = await respond(request.app, request.match_info["session_id"][:64], claims, body.push_id,
                           body.answer, body.values, body.signature)
    return web.json_response({"push": result})


@routes.get("/sessions/{session_id}/pushes")
async def list_pushes(request: web.Request) -> web.Response:
    """The session's pushes and their answers (for its teller or a supervisor of its queue), oldest first."""
    claims = await authenticate(request)
    items = await listing(request.app, request.match_info["session_id"][:64], claims)
    return web.json_response({"pushes": items}, headers={"Cache-Control": "no-store"})


@routes.get("/sessions/{session_id}/pushes/{push_id}/signature")
async def get_signature(request: web.Request) -> web.Response:
    """The customer's signature (PNG) answering a signature request, for the teller or a supervisor."""
    claims = await authenticate(request)
    path = await signature_file(request.app, request.match_info["session_id"][:64], claims,
                                request.match_info["push_id"][:64])
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})
