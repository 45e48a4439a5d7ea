"""Work orders: the durable record of the business done in one call, on the audit chain.

A work order is started by the session's teller from the service's definition in force when the
call started (`service_definitions`), and records which version that was. It holds the form values
the teller entered, the customer's confirmation (when, the values shown, the values confirmed and
the SHA-256 of what was confirmed), the signature, the supervisor's authorisation and the
dual-recording checklist, and how it ended (its disposition).

    draft ──confirm──> awaiting_customer ──customer confirms, authorisation needed──> awaiting_authorisation
      ▲                  │   │ (customer declines, or the teller reopens: back to draft)      │
      └──────────────────┘   └──complete (no authorisation needed)──> completed <──complete──┘
    any state but completed ──cancel──> cancelled

Confirming pushes the form (and a signature request when the definition asks for one) to the
customer through `pushes`; the customer's answer fills the work order (`pushes.ANSWER_HOOKS`).
An authorisation is asked of the queue's supervisors when the customer has confirmed values that
need one; its decision comes back through `authorisations.DECISION_HOOKS`, bound to the values it
was asked for. A refusal leaves only cancel, or reopen, change and ask again. Completing needs the
customer's confirmation, the signature if asked, a grant if needed, and every checklist item heard
from its speaker (ticked from the call's `keyword` events) or overridden by a supervisor with a reason.

    POST sessions/<id>/work_orders {values?}                the session's teller, live call -> 201
    GET  sessions/<id>/work_orders                          teller / supervisor of the queue
    GET  work_orders/<id>                                   teller / supervisor of the queue
    POST work_orders/<id>/values {values}                   teller, draft
    POST work_orders/<id>/confirm                           teller, draft, live call
    POST work_orders/<id>/reopen                            teller, awaiting_*
    POST work_orders/<id>/complete {note?}                  teller
    POST work_orders/<id>/cancel {reason}                   teller
    POST work_orders/<id>/checklist/override {items, reason} supervisor of the queue
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cloudbank.platform import events, pushes, session_history
from cloudbank.platform.authorisations import AUTHZ_ID_RE, Authorisations
from cloudbank.platform.errors import BadRequest, Conflict, Forbidden, NotFound
from cloudbank.platform.records import work_orders
from cloudbank.platform.service import AUDIT, ENGINE, REDIS, authenticate
from cloudbank.platform.service_definitions import Definition, ServiceDefinitions, check_values
from cloudbank.platform.sessions import LIVE, Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

WORK_ORDER_ID_RE = re.compile(r"^[0-9a-f]{32}$")
OPEN = ("draft", "awaiting_customer", "awaiting_authorisation")
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"awaiting_customer", "cancelled"}),
    "awaiting_customer": frozenset({"draft", "awaiting_authorisation", "completed", "cancelled"}),
    "awaiting_authorisation": frozenset({"draft", "completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """As the video node's keyword spotter compares phrases: lower case, NFC, no punctuation or spaces."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFC", text).casefold())


def canonical_sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class WorkOrder:
    id: str
    session_id: str
    service: str
    definition_version: int
    teller_id: str
    state: str
    values: dict[str, str]
    confirmation: dict[str, Any] | None
    signature: dict[str, Any] | None
    authorisation: dict[str, Any] | None
    checklist: list[dict[str, Any]]
    pushes: dict[str, str]
    disposition: dict[str, Any] | None
    created_at: float
    updated_at: float

    def public(self, definition: Definition | None = None) -> dict[str, Any]:
        body = asdict(self)
        if definition is not None:
            body["definition"] = asdict(definition)
        return body


def _loads(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


def _row(row: Any) -> WorkOrder:
    return WorkOrder(row.id, row.session_id, row.service, int(row.definition_version), row.teller_id, row.state,
                     json.loads(row.form_values), _loads(row.confirmation), _loads(row.signature),
                     _loads(row.authorisation), json.loads(row.checklist), json.loads(row.pushes),
                     _loads(row.disposition), float(row.created_at), float(row.updated_at))


def _columns(wo: WorkOrder) -> dict[str, Any]:
    def dump(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    return {"state": wo.state, "form_values": json.dumps(wo.values, ensure_ascii=False),
            "confirmation": dump(wo.confirmation), "signature": dump(wo.signature),
            "authorisation": dump(wo.authorisation), "checklist": json.dumps(wo.checklist, ensure_ascii=False),
            "pushes": json.dumps(wo.pushes), "disposition": dump(wo.disposition), "updated_at": wo.updated_at}


def missing_items(wo: WorkOrder) -> list[str]:
    """Checklist items neither heard nor overridden."""
    return [i["id"] for i in wo.checklist if not i.get("heard") and not i.get("override")]


class WorkOrders:
    """Work orders over the app's records, Redis and audit chain."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.engine = app[ENGINE]
        self.sessions = Sessions(app)
        self.definitions = ServiceDefinitions(self.engine)

    # -- reading -----------------------------------------------------------------------------------

    async def load(self, work_order_id: str) -> WorkOrder:
        if not WORK_ORDER_ID_RE.match(work_order_id):
            raise NotFound("no such work order")
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(work_orders).where(work_orders.c.id == work_order_id))).first()
        if row is None:
            raise NotFound("no such work order")
        return _row(row)

    async def definition(self, wo: WorkOrder) -> Definition:
        return (await self.definitions.version(wo.service, wo.definition_version)).definition

    async def for_teller(self, work_order_id: str, claims: Claims) -> tuple[WorkOrder, Session]:
        """The work order, if the caller is the teller of its call; anyone else's is a 404."""
        wo = await self.load(work_order_id)
        session = await self.sessions.get(wo.session_id)
        if claims.role != "teller" or claims.sub not in (wo.teller_id, session.teller_id):
            raise NotFound("no such work order")
        return wo, session

    async def viewed(self, work_order_id: str, claims: Claims) -> WorkOrder:
        """For its teller (another teller: 404) or a supervisor of its queue (403 otherwise)."""
        wo = await self.load(work_order_id)
        if claims.role == "teller" and claims.sub != wo.teller_id:
            raise NotFound("no such work order")
        await pushes.viewed_session(self.app, wo.session_id, claims)
        return await self.tick(wo)

    async def of_session(self, session_id: str, claims: Claims) -> list[WorkOrder]:
        session = await pushes.viewed_session(self.app, session_id, claims)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(work_orders).where(work_orders.c.session_id == session.id)
                                       .order_by(work_orders.c.created_at))).all()
        return [await self.tick(_row(r)) for r in rows]

    # -- writing -----------------------------------------------------------------------------------

    async def save(self, old: WorkOrder, new: WorkOrder, who: str, action: str, details: dict[str, Any]) -> WorkOrder:
        """Compare-and-set from `old`'s state (409 when it moved meanwhile or may not go there), then
        the audit chain and the teller's screen."""
        if new.state != old.state and new.state not in TRANSITIONS[old.state]:
            raise Conflict(f"the work order is {old.state}; it cannot go to {new.state}", state=old.state)
        new = replace(new, updated_at=time.time())
        async with self.engine.begin() as conn:
            done = await conn.execute(work_orders.update().where(
                work_orders.c.id == old.id, work_orders.c.state == old.state,
                work_orders.c.updated_at == old.updated_at).values(**_columns(new)))
        if done.rowcount != 1:
            fresh = await self.load(old.id)
            raise Conflict(f"the work order changed meanwhile (it is {fresh.state}); reload it", state=fresh.state)
        await self.app[AUDIT].append(who, action, f"work_order:{new.id}", {
            "session": new.session_id, "from": old.state, "to": new.state, **details})
        await events.publish(self.app[REDIS], f"user:{new.teller_id}",
                             {"type": "work_order.update", "session_id": new.session_id, "work_order": new.public()})
        return new

    async def create(self, session_id: str, claims: Claims, values: dict[str, str]) -> tuple[WorkOrder, Definition]:
        session, _ = await self.sessions.for_party(session_id, claims, ("teller",))
        if session.state not in LIVE:
            raise Conflict(f"the session is {session.state}; a work order is started during the call",
                           state=session.state)
        version = await self.definitions.in_force_at(session.service, session.created_at)
        if version is None:
            raise Conflict(f"service {session.service} had no approved definition when this call started")
        check_values(version.definition, values, complete=False)
        async with self.engine.connect() as conn:
            open_one = (await conn.execute(sa.select(work_orders.c.id).where(
                work_orders.c.session_id == session.id, work_orders.c.state.in_(OPEN)))).first()
        if open_one is not None:
            raise Conflict("this call has an open work order: complete or cancel it first", work_order_id=open_one.id)
        checklist = [{"id": i.id, "kind": i.kind, "speaker": "teller" if i.kind == "say" else "customer",
                      "phrase": i.phrase, "label": i.label, "heard": None, "override": None}
                     for i in version.definition.script]
        now = time.time()
        wo = WorkOrder(uuid.uuid4().hex, session.id, session.service, version.version, session.teller_id, "draft",
                       dict(values), None, None, None, checklist, {}, None, now, now)
        async with self.engine.begin() as conn:
            await conn.execute(work_orders.insert().values(
                id=wo.id, session_id=wo.session_id, service=wo.service, definition_version=wo.definition_version,
                teller_id=wo.teller_id, created_at=now, **_columns(wo)))
        await self.app[AUDIT].append(actor(claims), "work_order.created", f"work_order:{wo.id}", {
            "session": session.id, "service": wo.service, "definition_version": wo.definition_version,
            "values": wo.values})
        return wo, version.definition

    async def set_values(self, work_order_id: str, claims: Claims, values: dict[str, str]) -> WorkOrder:
        wo, _ = await self.for_teller(work_order_id, claims)
        if wo.state != "draft":
            raise Conflict(f"the work order is {wo.state}; values change only in a draft (reopen it)", state=wo.state)
        check_values(await self.definition(wo), values, complete=False)
        merged = {k: v for k, v in {**wo.values, **values}.items() if v != ""}
        return await self.save(wo, replace(wo, values=merged), actor(claims), "work_order.values", {"values": merged})

    async def confirm(self, work_order_id: str, claims: Claims) -> WorkOrder:
        """Push the form (and a signature request if asked) to the customer."""
        wo, session = await self.for_teller(work_order_id, claims)
        if wo.state != "draft":
            raise Conflict(f"the work order is {wo.state}; only a draft is sent to the customer", state=wo.state)
        if session.state not in LIVE:
            raise Conflict(f"the session is {session.state}; the customer can confirm only during the call",
                           state=session.state)
        d = await self.definition(wo)
        check_values(d, wo.values, complete=True)
        sent: dict[str, str] = {}
        if d.fields:
            fields = [{"name": f.name, "label": f.label, "kind": f.kind, "required": f.required, "confirm": f.confirm,
                       "value": wo.values.get(f.name, ""), "options": f.options} for f in d.fields]
            form = await pushes.push(self.app, session.id, claims, {
                "kind": "form", "title": d.title, "text": "", "fields": fields, "work_order_id": wo.id})
            sent["form"] = form["push_id"]
        if d.signature:
            sig = await pushes.push(self.app, session.id, claims, {
                "kind": "signature_request", "title": d.title, "text": "", "work_order_id": wo.id})
            sent["signature"] = sig["push_id"]
        new = replace(wo, state="awaiting_customer", pushes=sent, confirmation=None, signature=None,
                      authorisation=None)
        saved = await self.save(wo, new, actor(claims), "work_order.sent", {"pushes": sent, "values": wo.values})
        if not sent:  # nothing for the customer to answer: straight on
            saved = await self._customer_done(saved, d)
        return saved

    async def reopen(self, work_order_id: str, claims: Claims) -> WorkOrder:
        wo, _ = await self.for_teller(work_order_id, claims)
        if wo.state not in ("awaiting_customer", "awaiting_authorisation"):
            raise Conflict(f"the work order is {wo.state}; only one sent to the customer can be reopened",
                           state=wo.state)
        new = replace(wo, state="draft", pushes={}, confirmation=None, signature=None, authorisation=None)
        return await self.save(wo, new, actor(claims), "work_order.reopened", {
            "authorisation": wo.authorisation})

    async def cancel(self, work_order_id: str, claims: Claims, reason: str) -> WorkOrder:
        wo, _ = await self.for_teller(work_order_id, claims)
        if wo.state not in OPEN:
            raise Conflict(f"the work order is {wo.state}; it cannot be cancelled", state=wo.state)
        disposition = {"outcome": "cancelled", "reason": reason, "by": claims.sub, "at": time.time()}
        return await self.save(wo, replace(wo, state="cancelled", disposition=disposition), actor(claims),
                               "work_order.cancelled", {"reason": reason})

    async def complete(self, work_order_id: str, claims: Claims, note: str) -> WorkOrder:
        wo, session = await self.for_teller(work_order_id, claims)
        if session.state not in (*LIVE, "wrap_up"):
            raise Conflict(f"the session is {session.state}; complete the work order before wrapping up",
                           state=session.state)
        if wo.state not in ("awaiting_customer", "awaiting_authorisation"):
            raise Conflict(f"the work order is {wo.state}; it cannot be completed", state=wo.state)
        d = await self.definition(wo)
        wo = await self.tick(wo)
        if "form" in wo.pushes and not (wo.confirmation and wo.confirmation.get("answer") == "accept"):
            raise Conflict("the customer has not confirmed the form yet", state=wo.state)
        if "signature" in wo.pushes and not (wo.signature and wo.signature.get("answer") == "accept"):
            raise Conflict("the customer has not signed yet", state=wo.state)
        if d.needs_authorisation(wo.values):
            await self._check_grant(wo)
        missing = missing_items(wo)
        if missing:
            raise Conflict(f"the dual-recording checklist is incomplete: {', '.join(missing)} not heard yet "
                           f"(a supervisor can override named items with a reason)", missing=missing)
        disposition = {"outcome": "completed", "note": note, "by": claims.sub, "at": time.time()}
        done = replace(wo, state="completed", disposition=disposition)
        record = done.public()
        record.pop("updated_at")
        return await self.save(wo, done, actor(claims), "work_order.completed",
                               {"note": note, "record_sha256": canonical_sha256(record), "record": record})

    async def _check_grant(self, wo: WorkOrder) -> None:
        """A grant made for this work order and exactly these values, as stored where it was decided."""
        authz = wo.authorisation or {}
        if authz.get("state") == "refused":
            raise Conflict(f"the supervisor refused: {authz.get('decision_reason') or 'no reason given'}; cancel the "
                           f"work order, or reopen, change it and ask again", authorisation=authz)
        if authz.get("state") != "granted":
            raise Conflict("waiting for a supervisor's authorisation", authorisation=authz or None)
        aid = str(authz.get("id", ""))
        raw = await self.app[REDIS].get(f"authz:{aid}") if AUTHZ_ID_RE.match(aid) else None
        source: dict[str, Any] = json.loads(raw) if raw else authz
        if (source.get("state") != "granted" or source.get("work_order_id") != wo.id
                or source.get("values_sha256") != canonical_sha256(wo.values)):
            raise Conflict("the authorisation does not match this work order's values: reopen and ask again")

    # -- the customer's answers and the supervisor's decision ---------------------------------------

    async def check_answer(self, app: web.Application, session: Session, push: dict[str, Any], answer: str,
                           values: dict[str, str]) -> None:
        """A push of a work order takes an answer only while the work order waits for it."""
        if not push.get("work_order_id"):
            return
        wo = await self.load(str(push["work_order_id"]))
        if wo.state != "awaiting_customer" or push["push_id"] not in wo.pushes.values():
            raise Conflict("this form is no longer waiting for an answer", state=wo.state)
        if push["kind"] == "form" and answer == "accept":
            check_values(await self.definition(wo), {**wo.values, **values}, complete=True)

    async def answered(self, app: web.Application, session: Session, push: dict[str, Any], claims: Claims) -> None:
        if not push.get("work_order_id"):
            return
        wo = await self.load(str(push["work_order_id"]))
        d = await self.definition(wo)
        who = actor(claims)
        at = float(push.get("answered_at") or time.time())
        if push["answer"] == "decline":
            declined = {"answer": "decline", "at": at, "by": who, "push_id": push["push_id"]}
            if push["kind"] == "form":
                new = replace(wo, state="draft", pushes={}, confirmation=declined)
            else:
                new = replace(wo, state="draft", pushes={}, signature=declined)
            await self.save(wo, new, who, "work_order.declined", {"push_id": push["push_id"], "kind": push["kind"]})
            return
        if push["kind"] == "form":
            merged = {**wo.values, **push.get("values", {})}
            shown = {f.name: wo.values.get(f.name, "") for f in d.fields}
            confirmed = {"work_order": wo.id, "service": wo.service, "definition_version": wo.definition_version,
                         "values": merged}
            confirmation = {"answer": "accept", "at": at, "by": who, "push_id": push["push_id"],
                            "values_shown": shown, "values": merged, "confirm_fields": [f.name for f in d.fields
                                                                                        if f.confirm],
                            "sha256": canonical_sha256(confirmed)}
            wo = await self.save(wo, replace(wo, values=merged, confirmation=confirmation), who,
                                 "work_order.confirmed", {"confirmation": confirmation})
        else:
            signature = {"answer": "accept", "at": at, "by": who, "push_id": push["push_id"],
                         "sha256": push.get("signature_sha256")}
            wo = await self.save(wo, replace(wo, signature=signature), who, "work_order.signed",
                                 {"signature": signature})
        if all(self._accepted(wo, k) for k in wo.pushes):
            await self._customer_done(wo, d)

    @staticmethod
    def _accepted(wo: WorkOrder, kind: str) -> bool:
        answer = wo.confirmation if kind == "form" else wo.signature
        return bool(answer and answer.get("answer") == "accept")

    async def _customer_done(self, wo: WorkOrder, d: Definition) -> WorkOrder:
        """The customer has answered everything: ask for an authorisation when the values need one."""
        if not d.needs_authorisation(wo.values):
            return wo
        session = await self.sessions.get(wo.session_id)
        values_sha = canonical_sha256(wo.values)
        request = await Authorisations(self.app).open(
            session, "platform", f"work order: {d.title}",
            {"work_order_id": wo.id, "values": wo.values, "values_sha256": values_sha})
        authz = {"id": request["id"], "state": "pending", "requested_at": request["at"], "values_sha256": values_sha}
        return await self.save(wo, replace(wo, state="awaiting_authorisation", authorisation=authz), "platform",
                               "work_order.authorisation_requested", {"authorisation": request["id"]})

    async def decided(self, app: web.Application, request: dict[str, Any]) -> None:
        """A supervisor decided: the work order waiting for this very request records it."""
        if not request.get("work_order_id"):
            return
        wo = await self.load(str(request["work_order_id"]))
        current = wo.authorisation or {}
        if wo.state != "awaiting_authorisation" or current.get("id") != request["id"]:
            return  # reopened or cancelled meanwhile: the decision stays on the request only
        authz = {**current, "state": request["state"], "decided_by": request["decided_by"],
                 "decision_reason": request["decision_reason"], "decided_at": request["decided_at"]}
        await self.save(wo, replace(wo, authorisation=authz), str(request["decided_by"]),
                        "work_order.authorisation_" + str(request["state"]), {"authorisation": authz})

    # -- the dual-recording checklist ----------------------------------------------------------------

    async def tick(self, wo: WorkOrder) -> WorkOrder:
        """Tick open items heard from their speaker in the call's keyword events (with their time)."""
        if wo.state not in OPEN or not missing_items(wo):
            return wo
        heard = (await session_history.read(self.app[REDIS], wo.session_id))["keywords"]
        checklist, ticked = [], []
        for item in wo.checklist:
            if not item.get("heard"):
                hit = next((e for e in heard if normalise(str(e.get("phrase", ""))) == normalise(item["phrase"])
                            and e.get("speaker") == item["speaker"]), None)
                if hit is not None:
                    item = {**item, "heard": {"at": hit.get("at"), "end": hit.get("end"), "rule": hit.get("rule")}}
                    ticked.append(item["id"])
            checklist.append(item)
        if not ticked:
            return wo
        try:
            return await self.save(wo, replace(wo, checklist=checklist), "platform", "work_order.checklist_heard",
                                   {"items": [i for i in checklist if i["id"] in ticked]})
        except Conflict:
            return await self.load(wo.id)  # another request ticked it first

    async def override(self, work_order_id: str, claims: Claims, items: list[str], reason: str) -> WorkOrder:
        """A supervisor of the queue marks named checklist items done, with a reason."""
        wo = await self.load(work_order_id)
        if not await self.sessions.supervises(claims, wo.service):
            raise Forbidden("only a supervisor of this queue may override the checklist")
        if wo.state not in OPEN:
            raise Conflict(f"the work order is {wo.state}; its checklist is closed", state=wo.state)
        known = {i["id"] for i in wo.checklist}
        unknown = [i for i in items if i not in known]
        if unknown:
            raise BadRequest(f"the checklist has no item '{unknown[0][:64]}'", field="items")
        if not reason.strip():
            raise BadRequest("an override needs a reason", field="reason")
        mark = {"by": claims.sub, "reason": reason, "at": time.time()}
        checklist = [{**i, "override": mark} if i["id"] in items else i for i in wo.checklist]
        return await self.save(wo, replace(wo, checklist=checklist), claims.sub, "work_order.checklist_override",
                               {"items": items, "reason": reason})

    # -- wrap-up -------------------------------------------------------------------------------------

    async def check_wrapup(self, session_id: str, claims: Claims, service_done: bool) -> None:
        """`service_done` needs a completed work order when the call's service has a form."""
        if not service_done:
            return
        session, _ = await self.sessions.for_party(session_id, claims, ("teller",))
        version = await self.definitions.in_force_at(session.service, session.created_at)
        if version is None or not version.definition.fields:
            return
        async with self.engine.connect() as conn:
            done = (await conn.execute(sa.select(work_orders.c.id).where(
                work_orders.c.session_id == session.id, work_orders.c.state == "completed"))).first()
        if done is None:
            raise Conflict(f"service {session.service} has a form: complete its work order before wrapping up "
                           f"with service_done, or wrap up with service_done false")


class _AnswerHook:
    """`pushes.ANSWER_HOOKS` entry: a work order's pushes fill the work order."""

    async def check(self, app: web.Application, session: Session, push: dict[str, Any], answer: str,
                    values: dict[str, str]) -> None:
        await WorkOrders(app).check_answer(app, session, push, answer, values)

    async def answered(self, app: web.Application, session: Session, push: dict[str, Any], claims: Claims) -> None:
        await WorkOrders(app).answered(app, session, push, claims)


ANSWER_HOOK = _AnswerHook()


async def on_decision(app: web.Application, request: dict[str, Any]) -> None:
    """`authorisations.DECISION_HOOKS` entry."""
    await WorkOrders(app).decided(app, request)


# -- HTTP ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateBody:
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValuesBody:
    values: dict[str, str]


@dataclass(frozen=True)
class CompleteBody:
    note: str = field(default="", metadata=limit(2000))


@dataclass(frozen=True)
class CancelBody:
    reason: str = field(metadata=limit(500))


@dataclass(frozen=True)
class OverrideBody:
    items: list[str] = field(metadata=limit(64))
    reason: str = field(metadata=limit(500))


@dataclass(frozen=True)
class NoBody:
    """No fields: send nothing, or `{}`."""


async def _no_body(request: web.Request) -> None:
    if request.can_read_body and request.content_length != 0:
        await read_json(request, NoBody)


def _wid(request: web.Request) -> str:
    return request.match_info["work_order_id"][:64]


async def _reply(app: web.Application, wo: WorkOrder, status: int = 200) -> web.Response:
    d = await WorkOrders(app).definition(wo)
    return web.json_response({"work_order": wo.public(d)}, status=status, headers={"Cache-Control": "no-store"})


@routes.post("/sessions/{session_id}/work_orders")
async def create_work_order(request: web.Request) -> web.Response:
    """Start the call's work order from its service's definition (the session's teller, live call)."""
    claims = await authenticate(request)
    body = await read_json(request, CreateBody)
    wo, d = await WorkOrders(request.app).create(request.match_info["session_id"][:64], claims, body.values)
    return web.json_response({"work_order": wo.public(d)}, status=201)


@routes.get("/sessions/{session_id}/work_orders")
async def session_work_orders(request: web.Request) -> web.Response:
    """The call's work orders, oldest first (its teller, or a supervisor of its queue)."""
    claims = await authenticate(request)
    found = await WorkOrders(request.app).of_session(request.match_info["session_id"][:64], claims)
    return web.json_response({"work_orders": [w.public() for w in found]}, headers={"Cache-Control": "no-store"})


@routes.get("/work_orders/{work_order_id}")
async def get_work_order(request: web.Request) -> web.Response:
    """One work order with its definition (its teller, or a supervisor of its queue)."""
    claims = await authenticate(request)
    return await _reply(request.app, await WorkOrders(request.app).viewed(_wid(request), claims))


@routes.post("/work_orders/{work_order_id}/values")
async def set_work_order_values(request: web.Request) -> web.Response:
    """Change form values of a draft (an empty string clears a field)."""
    claims = await authenticate(request)
    body = await read_json(request, ValuesBody)
    return await _reply(request.app, await WorkOrders(request.app).set_values(_wid(request), claims, body.values))


@routes.post("/work_orders/{work_order_id}/confirm")
async def confirm_work_order(request: web.Request) -> web.Response:
    """Send the form (and a signature request, if asked) to the customer to confirm."""
    claims = await authenticate(request)
    await _no_body(request)
    return await _reply(request.app, await WorkOrders(request.app).confirm(_wid(request), claims))


@routes.post("/work_orders/{work_order_id}/reopen")
async def reopen_work_order(request: web.Request) -> web.Response:
    """Back to draft to change it (after a refusal, or before the customer answers)."""
    claims = await authenticate(request)
    await _no_body(request)
    return await _reply(request.app, await WorkOrders(request.app).reopen(_wid(request), claims))


@routes.post("/work_orders/{work_order_id}/complete")
async def complete_work_order(request: web.Request) -> web.Response:
    """Complete: needs the confirmation, the signature, a grant and the checklist as the definition asks."""
    claims = await authenticate(request)
    body = await read_json(request, CompleteBody)
    return await _reply(request.app, await WorkOrders(request.app).complete(_wid(request), claims, body.note))


@routes.post("/work_orders/{work_order_id}/cancel")
async def cancel_work_order(request: web.Request) -> web.Response:
    """Cancel an open work order with a reason."""
    claims = await authenticate(request)
    body = await read_json(request, CancelBody)
    return await _reply(request.app, await WorkOrders(request.app).cancel(_wid(request), claims, body.reason))


@routes.post("/work_orders/{work_order_id}/checklist/override")
async def override_checklist(request: web.Request) -> web.Response:
    """A supervisor of the queue marks named checklist items done, with a reason (audited)."""
    claims = await authenticate(request)
    body = await read_json(request, OverrideBody)
    wo = await WorkOrders(request.app).override(_wid(request), claims, body.items, body.reason)
    return await _reply(request.app, wo)
