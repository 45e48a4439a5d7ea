"""Service definitions: what the business of a service is made of, changed under maker-checker.

A definition holds the service's form template (fields with kind, label, validation, whether
required, whether the customer must confirm it), its dual-recording script (an ordered checklist:
phrases the teller must say, answers the customer must give), when it needs a supervisor's
authorisation (never, always, or above an amount in a named form field), whether the customer
signs, and its keywords. Every change is a new version that starts `pending`; only a different
admin approves it (the maker may not), as for playlists; approving supersedes the version before.

    pending ──approve (another admin)──> approved ──(a later version approved)──> superseded
       └─────reject (any admin)───────> rejected

A call uses the version that was approved when it started (`in_force_at(service, session start)`).

    GET  services/<code>/definitions                      admin: every version
    POST services/<code>/definitions {definition}         admin: propose -> 201 pending (400 with the
                                                          field for a bad one, e.g. a phrase with a
                                                          word the speech engine does not know)
    POST services/<code>/definitions/<v>/approve          another admin
    POST services/<code>/definitions/<v>/reject {reason}  any admin
    GET  services/<code>/definition                       staff: the approved version now
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.errors import BadRequest, Conflict, NotFound
from cloudbank.platform.maker_checker import MakerChecker
from cloudbank.platform.phrase_check import check_phrase_fields
from cloudbank.platform.records import service_definitions
from cloudbank.platform.service import AUDIT, ENGINE, authenticate
from cloudbank.platform.validation import limit, parse, read_json

routes = web.RouteTableDef()

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_FIELDS = 40
MAX_SCRIPT = 40


@dataclass(frozen=True)
class FieldDef:
    """One form field. `confirm`: the customer must confirm its value; `min`/`max` bound a number,
    `max_length` and `pattern` (a full-match regular expression) a text."""

    name: str = field(metadata=limit(64))
    label: str = field(metadata=limit(200))
    kind: Literal["text", "number", "date", "checkbox", "select"] = "text"
    required: bool = False
    confirm: bool = False
    options: list[str] = field(default_factory=list, metadata=limit(200))
    min: float | None = None
    max: float | None = None
    max_length: int = 200
    pattern: str = field(default="", metadata=limit(200))


@dataclass(frozen=True)
class ScriptItem:
    """One dual-recording checklist item: `say` is a phrase the teller must say, `answer` one the
    customer must give."""

    id: str = field(metadata=limit(64))
    kind: Literal["say", "answer"]
    phrase: str = field(metadata=limit(200))
    label: str = field(default="", metadata=limit(200))


@dataclass(frozen=True)
class Definition:
    title: str = field(metadata=limit(200))
    fields: list[FieldDef] = field(default_factory=list)
    script: list[ScriptItem] = field(default_factory=list)
    authorisation: Literal["never", "always", "above"] = "never"
    authorisation_field: str = field(default="", metadata=limit(64))
    authorisation_above: float = 0.0
    signature: bool = False
    keywords: list[str] = field(default_factory=list, metadata=limit(200))

    def field_named(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)

    def needs_authorisation(self, values: dict[str, str]) -> bool:
        if self.authorisation == "always":
            return True
        if self.authorisation == "above":
            try:
                return float(values.get(self.authorisation_field, "") or 0) > self.authorisation_above
            except ValueError:
                return True  # not a number: a supervisor looks at it
        return False


@dataclass(frozen=True)
class ProposeBody:
    definition: Definition


@dataclass(frozen=True)
class RejectBody:
    reason: str = field(metadata=limit(500))


@dataclass(frozen=True)
class Version:
    service: str
    version: int
    state: str
    definition: Definition
    made_by: str
    made_at: float
    decided_by: str | None
    decided_at: float | None
    reason: str | None

    def public(self) -> dict[str, Any]:
        return asdict(self)


def check_definition(d: Definition) -> Definition:
    """Refuse a definition that could not be filled or checked; returns it unchanged."""
    if len(d.fields) > MAX_FIELDS:
        raise BadRequest(f"a form has at most {MAX_FIELDS} fields", field="definition.fields")
    if len(d.script) > MAX_SCRIPT:
        raise BadRequest(f"a script has at most {MAX_SCRIPT} items", field="definition.script")
    names = [f.name for f in d.fields]
    if len(set(names)) != len(names):
        raise BadRequest("form field names must be unique", field="definition.fields")
    for f in d.fields:
        where = f"definition.fields.{f.name[:64]}"
        if not NAME_RE.match(f.name):
            raise BadRequest(f"field name '{f.name[:64]}' must be a-z, 0-9 or '_', starting with a letter",
                             field=where)
        if f.kind == "select" and not f.options:
            raise BadRequest(f"select field '{f.name}' needs options", field=where)
        if f.kind != "select" and f.options:
            raise BadRequest(f"only a select field has options ('{f.name}')", field=where)
        if f.min is not None and f.max is not None and f.min > f.max:
            raise BadRequest(f"field '{f.name}': min is above max", field=where)
        if not 1 <= f.max_length <= 2000:
            raise BadRequest(f"field '{f.name}': max_length must be 1-2000", field=where)
        if f.pattern:
            try:
                re.compile(f.pattern)
            except re.error as exc:
                raise BadRequest(f"field '{f.name}': the pattern is not a regular expression ({exc})",
                                 field=where) from None
    ids = [i.id for i in d.script]
    if len(set(ids)) != len(ids):
        raise BadRequest("script item ids must be unique", field="definition.script")
    for item in d.script:
        if not NAME_RE.match(item.id):
            raise BadRequest(f"script item id '{item.id[:64]}' must be a-z, 0-9 or '_'", field="definition.script")
        if not item.phrase.strip():
            raise BadRequest(f"script item '{item.id}' needs a phrase", field="definition.script")
    if d.authorisation == "above":
        target = d.field_named(d.authorisation_field)
        if target is None or target.kind != "number":
            raise BadRequest("authorisation 'above' names a number field of the form",
                             field="definition.authorisation_field")
    elif d.authorisation_field:
        raise BadRequest("authorisation_field only goes with authorisation 'above'",
                         field="definition.authorisation_field")
    return d


def definition_phrases(d: Definition) -> list[tuple[str, str]]:
    """(field, phrase) for each phrase the live transcript must hear: script items, then keywords."""
    return ([(f"definition.script.{item.id}", item.phrase) for item in d.script]
            + [("definition.keywords", k) for k in d.keywords])


def check_value(f: FieldDef, value: str) -> str | None:
    """Why `value` does not fit the field (None: it fits). An empty value fits; `required` is separate."""
    if value == "":
        return None
    if f.kind == "number":
        try:
            number = float(value)
        except ValueError:
            return f"'{f.label}' must be a number"
        if number != number or number in (float("inf"), float("-inf")):
            return f"'{f.label}' must be a number"
        if f.min is not None and number < f.min:
            return f"'{f.label}' must be at least {f.min:g}"
        if f.max is not None and number > f.max:
            return f"'{f.label}' must be at most {f.max:g}"
    elif f.kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return f"'{f.label}' must be a date (YYYY-MM-DD)"
    elif f.kind == "checkbox":
        if value not in ("true", "false"):
            return f"'{f.label}' must be true or false"
    elif f.kind == "select":
        if value not in f.options:
            return f"'{f.label}' must be one of {', '.join(f.options)}"
    else:
        if len(value) > f.max_length:
            return f"'{f.label}' is longer than {f.max_length} characters"
        if f.pattern and re.fullmatch(f.pattern, value) is None:
            return f"'{f.label}' is not in the expected format"
    return None


def check_values(d: Definition, values: dict[str, str], complete: bool) -> None:
    """Refuse unknown fields and values that do not fit; with `complete`, missing required ones too."""
    for name, value in values.items():
        f = d.field_named(name)
        if f is None:
            raise BadRequest(f"the form has no field '{name[:64]}'", field="values")
        problem = check_value(f, value)
        if problem:
            raise BadRequest(problem, field=f"values.{name}")
    if complete:
        for f in d.fields:
            if f.required and not values.get(f.name, "").strip():
                raise BadRequest(f"'{f.label}' is required", field=f"values.{f.name}")
            if f.required and f.kind == "checkbox" and values.get(f.name) != "true":
                raise BadRequest(f"'{f.label}' must be ticked", field=f"values.{f.name}")


def _definition(raw: str) -> Definition:
    return parse(Definition, json.loads(raw))


def _version(row: Any) -> Version:
    return Version(row.service, int(row.version), row.state, _definition(row.body), row.made_by,
                   float(row.made_at), row.decided_by, row.decided_at, row.reason)


def _missing(service: str, number: int) -> str:
    return f"service {service[:64]} has no definition version {number}"


class ServiceDefinitions:
    """Definition versions in the records database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.checker = MakerChecker(engine, service_definitions, "service", _missing)

    async def propose(self, service: str, d: Definition, by: str) -> Version:
        """A new pending version; refused while another one waits for approval."""
        await Catalogue(self.engine).get(service)
        check_definition(d)
        body = json.dumps(asdict(d), ensure_ascii=False, separators=(",", ":"))
        now = time.time()
        try:
            async with self.engine.begin() as conn:
                number = await self.checker.next_number(conn, service)
                await conn.execute(service_definitions.insert().values(
                    service=service, version=number, state="pending", body=body, made_by=by, made_at=now))
        except IntegrityError:
            raise Conflict("another change to this service's definition was proposed at the same moment") from None
        return Version(service, number, "pending", d, by, now, None, None, None)

    async def approve(self, service: str, number: int, by: str) -> Version:
        """Approve a pending version (maker-checker: never by its maker)."""
        await self.checker.approve(service, number, by)
        return await self.version(service, number)

    async def reject(self, service: str, number: int, by: str, reason: str) -> Version:
        await self.checker.reject(service, number, by, reason)
        return await self.version(service, number)

    async def version(self, service: str, number: int) -> Version:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(service_definitions).where(
                service_definitions.c.service == service, service_definitions.c.version == number))).first()
        if row is None:
            raise NotFound(_missing(service, number))
        return _version(row)

    async def versions(self, service: str) -> list[Version]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(service_definitions).where(
                service_definitions.c.service == service).order_by(service_definitions.c.version))).all()
        return [_version(r) for r in rows]

    async def in_force_at(self, service: str, at: float) -> Version | None:
        """The version that was approved at time `at` (a call's start): the newest one approved by then."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(service_definitions).where(
                service_definitions.c.service == service,
                service_definitions.c.state.in_(("approved", "superseded")),
                service_definitions.c.decided_at <= at,
            ).order_by(service_definitions.c.decided_at.desc()).limit(1))).first()
        return _version(row) if row is not None else None


def _number(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or len(raw) > 9:
        raise NotFound("no such definition version")
    return int(raw)


@routes.get("/services/{code}/definitions")
async def list_definitions(request: web.Request) -> web.Response:
    """Every version of a service's definition, oldest first (admin)."""
    await authenticate(request)
    code = request.match_info["code"][:64]
    await Catalogue(request.app[ENGINE]).get(code)
    versions = await ServiceDefinitions(request.app[ENGINE]).versions(code)
    return web.json_response({"versions": [v.public() for v in versions]}, headers={"Cache-Control": "no-store"})


@routes.post("/services/{code}/definitions")
async def propose_definition(request: web.Request) -> web.Response:
    """Propose a new version of a service's definition (admin); it waits for another admin's approval."""
    claims = await authenticate(request)
    body = await read_json(request, ProposeBody)
    check_definition(body.definition)
    await check_phrase_fields(request.app, definition_phrases(body.definition))  # each must be hearable
    version = await ServiceDefinitions(request.app[ENGINE]).propose(request.match_info["code"][:64],
                                                                    body.definition, claims.sub)
    await request.app[AUDIT].append(claims.sub, "service_definition.proposed", f"service:{version.service}",
                                    {"version": version.version, "definition": asdict(version.definition)})
    return web.json_response({"version": version.public()}, status=201)


@routes.post("/services/{code}/definitions/{version}/approve")
async def approve_definition(request: web.Request) -> web.Response:
    """Approve a pending version (an admin other than its maker); calls that start from now use it."""
    claims = await authenticate(request)
    version = await ServiceDefinitions(request.app[ENGINE]).approve(request.match_info["code"][:64],
                                                                    _number(request), claims.sub)
    await request.app[AUDIT].append(claims.sub, "service_definition.approved", f"service:{version.service}",
                                    {"version": version.version, "made_by": version.made_by})
    return web.json_response({"version": version.public()})


@routes.post("/services/{code}/definitions/{version}/reject")
async def reject_definition(request: web.Request) -> web.Response:
    """Reject a pending version with a reason (any admin)."""
    claims = await authenticate(request)
    body = await read_json(request, RejectBody)
    version = await ServiceDefinitions(request.app[ENGINE]).reject(request.match_info["code"][:64],
                                                                   _number(request), claims.sub, body.reason)
    await request.app[AUDIT].append(claims.sub, "service_definition.rejected", f"service:{version.service}",
                                    {"version": version.version, "reason": body.reason})
    return web.json_response({"version": version.public()})


@routes.get("/services/{code}/definition")
async def current_definition(request: web.Request) -> web.Response:
    """The service's approved definition now (404 when it has none), for tellers, supervisors, admins."""
    await authenticate(request)
    code = request.match_info["code"][:64]
    version = await ServiceDefinitions(request.app[ENGINE]).in_force_at(code, time.time())
    if version is None:
        raise NotFound(f"service {code} has no approved definition")
    return web.json_response({"version": version.public()}, headers={"Cache-Control": "no-store"})
