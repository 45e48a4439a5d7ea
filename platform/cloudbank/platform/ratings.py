"""Customer satisfaction: when a call ends, its customer may rate it 1-5 with an optional comment.

    POST sessions/<id>/rating {score, comment?}    the session's customer (kiosk or phone), once,
                                                   after the call ended, within RATING_WINDOW_S -> 201

A rating is stored with its session (the `ratings` table, one row per session: a second one is a
409) and appended to the audit chain as `session.rated`; the session's teller gets
`session.rating`. The wallboard and /api/metrics show, per queue and per teller over the metrics
window, CSAT (the share of ratings that are 4 or 5), the average score and the number of ratings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloudbank.platform import events
from cloudbank.platform.audit import AuditChain
from cloudbank.platform.errors import BadRequest, Conflict
from cloudbank.platform.records import ratings
from cloudbank.platform.service import AUDIT, ENGINE, REDIS, authenticate
from cloudbank.platform.sessions import Session, Sessions, actor
from cloudbank.platform.tokens import Claims
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()

MIN_SCORE, MAX_SCORE = 1, 5
SATISFIED = 4  # a 4 or a 5 counts as satisfied
MAX_COMMENT = 500
# The customer's screen asks right after the call; a rating long after it is not the customer's
# impression of that call any more (and a stolen device token should not rate old calls).
RATING_WINDOW_S = 600.0
# A score and 500 characters, each \\uXXXX-escaped, fit in 4 KB; anything larger is refused unread.
MAX_BODY_BYTES = 4096
ENDED = ("wrap_up", "closed")


@dataclass(frozen=True)
class RatingBody:
    score: int
    comment: str = field(default="", metadata=limit(MAX_COMMENT))


@dataclass(frozen=True)
class Rating:
    session_id: str
    service: str
    teller_id: str
    score: int
    comment: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "service": self.service, "teller_id": self.teller_id,
                "score": self.score, "comment": self.comment, "created_at": self.created_at}


async def ended_at(audit: AuditChain, session: Session) -> float | None:
    """When the call ended (its `session.ended` on the audit chain; a wrap-up's close time else)."""
    for record in await audit.records(subject=f"session:{session.id}"):
        if record.action == "session.ended":
            return record.at
    return session.ended_at


async def rate(app: web.Application, session_id: str, claims: Claims, score: int, comment: str,
               now: float | None = None) -> Rating:
    """Store the customer's rating of an ended call; every refusal leaves nothing written."""
    session, _ = await Sessions(app).for_party(session_id, claims, ("customer",))
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise BadRequest(f"score must be a whole number from {MIN_SCORE} to {MAX_SCORE}", field="score")
    if session.state not in ENDED:
        raise Conflict(f"the call is not over (the session is {session.state}): rate it after it ends",
                       state=session.state)
    now = time.time() if now is None else now
    ended = await ended_at(app[AUDIT], session)
    if ended is None or now - ended > RATING_WINDOW_S:
        raise Conflict(f"ratings are taken for {int(RATING_WINDOW_S // 60)} minutes after a call ends; "
                       f"this call ended too long ago")
    rating = Rating(session.id, session.service, session.teller_id, score, comment.strip(), now)
    try:
        async with app[ENGINE].begin() as conn:
            await conn.execute(ratings.insert().values(
                session_id=rating.session_id, service=rating.service, teller_id=rating.teller_id,
                customer=session.customer, score=score, comment=rating.comment, created_at=now))
    except IntegrityError:
        raise Conflict("this call was rated already; a call is rated once") from None
    await app[AUDIT].append(actor(claims), "session.rated", f"session:{session.id}",
                            {"score": score, "comment": rating.comment})
    if session.teller_id:
        await events.publish(app[REDIS], f"user:{session.teller_id}",
                             {"type": "session.rating", "session_id": session.id, "score": score})
    return rating


async def get(app: web.Application, session_id: str) -> Rating | None:
    async with app[ENGINE].connect() as conn:
        row = (await conn.execute(sa.select(ratings).where(ratings.c.session_id == session_id))).first()
    if row is None:
        return None
    return Rating(row.session_id, row.service, row.teller_id, int(row.score), row.comment, float(row.created_at))


# -- CSAT ---------------------------------------------------------------------------------------------

@dataclass
class Csat:
    """Ratings of one queue or teller: how many, how many satisfied (4-5), their sum."""

    count: int = 0
    satisfied: int = 0
    total: int = 0

    def add(self, score: int) -> None:
        self.count += 1
        self.total += score
        self.satisfied += score >= SATISFIED

    @property
    def csat(self) -> float | None:
        return self.satisfied / self.count if self.count else None

    @property
    def average(self) -> float | None:
        return self.total / self.count if self.count else None

    def public(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)
        return {"count": self.count, "satisfied": self.satisfied, "csat": r(self.csat), "average": r(self.average)}


def compute(scores: Iterable[tuple[str, str, int]]) -> tuple[dict[str, Csat], dict[str, Csat]]:
    """(per queue, per teller) from (service, teller id, score) rows."""
    queues: dict[str, Csat] = {}
    tellers: dict[str, Csat] = {}
    for service, teller_id, score in scores:
        queues.setdefault(service, Csat()).add(score)
        if teller_id:
            tellers.setdefault(teller_id, Csat()).add(score)
    return queues, tellers


async def summary(app: web.Application, since: float, until: float) -> dict[str, Any]:
    """CSAT of the ratings given in (since, until]: per queue and per teller (named), for the wallboard."""
    from cloudbank.platform.authorisations import display_names  # it imports sessions, as this does

    async with app[ENGINE].connect() as conn:
        rows = (await conn.execute(sa.select(ratings.c.service, ratings.c.teller_id, ratings.c.score)
                                   .where(ratings.c.created_at > since, ratings.c.created_at <= until))).all()
    queues, tellers = compute((r.service, r.teller_id, int(r.score)) for r in rows)
    names = await display_names(app, set(tellers))
    return {"queues": {code: c.public() for code, c in sorted(queues.items())},
            "tellers": [{"teller_id": tid, "name": names.get(tid, tid), **c.public()}
                        for tid, c in sorted(tellers.items(), key=lambda kv: names.get(kv[0], kv[0]))]}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(csat: Mapping[str, Any], window_s: float) -> str:
    """Prometheus text of a `summary()`: CSAT, average score and count per queue and per teller."""
    lines: list[str] = []
    w = int(window_s)
    groups = (("queue", [(f'queue="{_label(code)}"', c) for code, c in csat.get("queues", {}).items()]),
              ("teller", [(f'teller="{_label(t["teller_id"])}",name="{_label(str(t["name"]))}"', t)
                          for t in csat.get("tellers", [])]))
    for prefix, items in groups:
        for name, key, text in (("csat", "csat", f"Share of ratings that are 4 or 5, over the window ({w} s)."),
                                ("rating_average", "average", f"Average rating 1-5, over the window ({w} s)."),
                                ("ratings", "count", f"Ratings given, over the window ({w} s).")):
            lines += [f"# HELP cloudbank_{prefix}_{name} {text}", f"# TYPE cloudbank_{prefix}_{name} gauge"]
            for labels, c in items:
                value = c.get(key)
                if value is not None:
                    lines.append(f"cloudbank_{prefix}_{name}{{{labels}}} {value:.6g}")
    return "\n".join(lines) + "\n"


@routes.post("/sessions/{session_id}/rating")
async def post_rating(request: web.Request) -> web.Response:
    """The session's customer rates the call that ended (1-5, optional comment), once."""
    claims = await authenticate(request)
    request = request.clone(client_max_size=MAX_BODY_BYTES)
    body = await read_json(request, RatingBody)
    rating = await rate(request.app, request.match_info["session_id"][:64], claims, body.score, body.comment)
    return web.json_response({"rating": rating.public()}, status=201)

