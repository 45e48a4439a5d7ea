"""The service catalogue: what a customer can ask for, which skill it needs, how its queue routes,
and the phrases the live transcript is checked against. Admins edit it through the API
(`GET services`, `PUT services/<code>`); every edit goes to the audit chain.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform import acd_link
from cloudbank.platform.errors import BadRequest, NotFound
from cloudbank.platform.phrase_check import check_phrases
from cloudbank.platform.records import services
from cloudbank.platform.routing import staffed_skills
from cloudbank.platform.service import AUDIT, ENGINE, REDIS, authenticate
from cloudbank.platform.validation import limit, read_json

Strategy = Literal["longest_idle", "fewest_calls", "skill_level"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# The service every deployment is expected to have: the demo seed creates it, new tellers get its skill.
GENERAL = "general"
PHRASE_MAX = 200
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Service:
    """One kind of service (and its queue)."""

    code: str
    name: str
    skill: str
    strategy: Strategy = "longest_idle"
    ring_timeout_s: float = 20.0
    wrapup_s: float = 30.0
    dual_recording: bool = False
    expected_handle_s: float = 300.0
    keywords: tuple[str, ...] = ()
    required_phrases: tuple[str, ...] = ()
    forbidden_phrases: tuple[str, ...] = ()
    qualified_only: bool = False
    # The name in other UI languages ({"zh": "..."}); `name` is the English one and fills any gap.
    names: dict[str, str] = field(default_factory=dict, hash=False)

    def names_by_language(self) -> dict[str, str]:
        """The name in every UI language the catalogue has it in, English always."""
        return {**self.names, "en": self.name}

    def name_in(self, lang: str) -> str:
        return self.names.get(lang) or self.name

    def public(self, lang: str = "en") -> dict[str, Any]:
        """What customers and kiosks see: `name` in `lang` (English when it has none), `names` all."""
        return {"code": self.code, "name": self.name_in(lang), "names": self.names_by_language(),
                "skill": self.skill, "dual_recording": self.dual_recording,
                "expected_handle_s": self.expected_handle_s, "keywords": list(self.keywords)}

    def full(self) -> dict[str, Any]:
        """Everything, for staff."""
        body = asdict(self)
        for key in ("keywords", "required_phrases", "forbidden_phrases"):
            body[key] = list(body[key])
        body["names"] = dict(self.names)
        return body


def check_service(svc: Service) -> Service:
    """Refuse values no queue could run with (400 naming the field)."""
    if not CODE_RE.match(svc.code):
        raise BadRequest("code must be 1-64 characters of a-z, 0-9, '_' or '-'", field="code")
    if not CODE_RE.match(svc.skill):
        raise BadRequest("skill must be 1-64 characters of a-z, 0-9, '_' or '-'", field="skill")
    if not svc.name.strip():
        raise BadRequest("name must not be empty", field="name")
    for lang, text in svc.names.items():
        if not LANG_RE.match(lang):
            raise BadRequest("names are keyed by a language code such as 'zh'", field="names")
        if not text.strip():
            raise BadRequest(f"names.{lang} must not be empty", field="names")
    if svc.strategy not in STRATEGIES:
        raise BadRequest(f"strategy must be one of {', '.join(STRATEGIES)}", field="strategy")
    for name, value, lo, hi in (("ring_timeout_s", svc.ring_timeout_s, 1, 600),
                                ("wrapup_s", svc.wrapup_s, 0, 3600),
                                ("expected_handle_s", svc.expected_handle_s, 1, 24 * 3600)):
        if not lo <= value <= hi:
            raise BadRequest(f"{name} must be between {lo} and {hi} seconds", field=name)
    for name in ("keywords", "required_phrases", "forbidden_phrases"):
        for phrase in getattr(svc, name):
            if not phrase.strip():
                raise BadRequest(f"{name} must not hold empty phrases", field=name)
    if svc.required_phrases and not svc.dual_recording:
        raise BadRequest("required_phrases only apply to dual-recorded services", field="required_phrases")
    return svc


def _from_row(row: Any) -> Service:
    return Service(row.code, row.name, row.skill, row.strategy, float(row.ring_timeout_s), float(row.wrapup_s),
                   bool(row.dual_recording), float(row.expected_handle_s), tuple(json.loads(row.keywords)),
                   tuple(json.loads(row.required_phrases)), tuple(json.loads(row.forbidden_phrases)),
                   bool(row.qualified_only), dict(json.loads(row.names or "{}")))


class Catalogue:
    """The services in the records database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, code: str) -> Service:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(services).where(services.c.code == code))).first()
        if row is None:
            raise NotFound(f"no service {code[:64]!r}; GET services lists them")
        return _from_row(row)

    async def list(self) -> list[Service]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(services).order_by(services.c.code))).all()
        return [_from_row(r) for r in rows]

    async def upsert(self, svc: Service) -> tuple[Service, bool]:
        """Create or replace a service; returns it and whether it was new."""
        check_service(svc)
        values = {**svc.full(), "updated_at": time.time()}
        for key in ("keywords", "required_phrases", "forbidden_phrases", "names"):
            values[key] = json.dumps(values[key], ensure_ascii=False)
        async with self.engine.begin() as conn:
            res = await conn.execute(services.update().where(services.c.code == svc.code)
                                     .values({k: v for k, v in values.items() if k != "code"}))
            created = res.rowcount == 0
            if created:
                await conn.execute(services.insert().values(values))
        return svc, created

    async def default_teller_skills(self) -> dict[str, int]:
        """The skills of every service needing no special qualification (level 1), `general` always."""
        skills = {GENERAL: 1}
        for svc in await self.list():
            if not svc.qualified_only:
                skills[svc.skill] = 1
        return skills


async def ensure_queue(app: web.Application, code: str) -> None:
    """Make the service's queue at the ACD now if it is not there yet (the matcher makes every
    catalogue service a queue, but only every couple of seconds); 404 for an unknown service."""
    if await acd_link.router(app).queue_spec(code) is None:
        await acd_link.configure_queue(app, await Catalogue(app[ENGINE]).get(code))


# -- HTTP --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceBody:
    """A service as an admin writes it (the code comes from the path)."""

    name: str = field(metadata=limit(200))
    skill: str = field(metadata=limit(64))
    strategy: Strategy = "longest_idle"
    ring_timeout_s: float = 20.0
    wrapup_s: float = 30.0
    dual_recording: bool = False
    expected_handle_s: float = 300.0
    keywords: list[str] = field(default_factory=list, metadata=limit(PHRASE_MAX))
    required_phrases: list[str] = field(default_factory=list, metadata=limit(PHRASE_MAX))
    forbidden_phrases: list[str] = field(default_factory=list, metadata=limit(PHRASE_MAX))
    qualified_only: bool = False
    names: dict[str, str] = field(default_factory=dict, metadata=limit(200))


STAFF = ("teller", "supervisor", "admin")


@routes.get("/services")
async def list_services(request: web.Request) -> web.Response:
    """The catalogue. Anyone may read the public view (kiosks and the phone page pick from it):
    `?lang=zh` gives each `name` in that language, `names` has every language's, and `staffed` says
    whether a teller with its skill is signed in now. Staff tokens get every field, including the
    phrase lists."""
    full = False
    if request.headers.get("Authorization"):
        claims = await authenticate(request)
        full = claims.role in STAFF
    lang = request.query.get("lang", "en")[:16]
    listed = await Catalogue(request.app[ENGINE]).list()
    if full:
        return web.json_response({"services": [s.full() for s in listed]})
    # Whether anyone can serve it now: a customer is not sent to wait for a teller who is not there.
    staffed = await staffed_skills(request.app[REDIS], sorted({s.skill for s in listed}))
    return web.json_response({"services": [{**s.public(lang), "staffed": staffed[s.skill] > 0} for s in listed]})


@routes.put("/services/{code}")
async def put_service(request: web.Request) -> web.Response:
    """Create or replace a service (admin). 201 when new, 200 when replaced."""
    claims = await authenticate(request)
    code = request.match_info["code"]
    if not CODE_RE.match(code):
        raise BadRequest("the service code must be 1-64 characters of a-z, 0-9, '_' or '-'", field="code")
    body = await read_json(request, ServiceBody)
    svc = Service(code, body.name.strip(), body.skill, body.strategy, body.ring_timeout_s, body.wrapup_s,
                  body.dual_recording, body.expected_handle_s, tuple(body.keywords),
                  tuple(body.required_phrases), tuple(body.forbidden_phrases), body.qualified_only,
                  {k: v.strip() for k, v in body.names.items()})
    check_service(svc)
    await check_phrases(request.app, svc.full())  # a phrase the speech engine cannot hear is refused
    svc, created = await Catalogue(request.app[ENGINE]).upsert(svc)
    await acd_link.configure_queue(request.app, svc)  # the queue routes by the new settings at once
    await request.app[AUDIT].append(claims.sub, "service.created" if created else "service.updated",
                                    f"service:{code}", svc.full())
    return web.json_response({"service": svc.full()}, status=201 if created else 200)
