"""Call sessions: one accepted ticket = one session = one room on one video node.

State machine (every move is a compare-and-set on the session's row, so two platform nodes
cannot both make a move; an illegal move is a 409):

    connecting ─> active <─> on_hold          (activate; hold / resume)
    connecting | active | on_hold ─> transferring ─> (the new leg starts) wrap_up
    connecting | active | on_hold ─> wrap_up   (end, by either party)
    wrap_up | transferring ─> closed           (wrap-up with a disposition code)

A session starts when a teller accepts an offer (`start_session`, called by the ACD's accept
handler): it is placed on the live, non-draining video node with the fewest calls, and each party
gets a join token scoped to that session and its role. Parties re-join with fresh tokens;
supervisors of the session's queue monitor it. Tellers push forms, documents and signature
requests and customers answer them (`pushes.py`). Tellers ask supervisors for authorisation
(`authorisations.py`). Every change is appended to the audit chain and sent to the session's
audience as an event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from cloudbank.platform import acd_link, events
from cloudbank.platform.catalogue import ensure_queue
from cloudbank.platform.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import sessions
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, KEYS, REDIS, REDIS_DOWN
from cloudbank.platform.tokens import Claims, turn_credentials

log = logging.getLogger("cloudbank.sessions")

STATES = ("connecting", "active", "on_hold", "transferring", "wrap_up", "closed")
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "connecting": frozenset({"active", "transferring", "wrap_up"}),
    "active": frozenset({"on_hold", "transferring", "wrap_up"}),
    "on_hold": frozenset({"active", "transferring", "wrap_up"}),
    "transferring": frozenset({"wrap_up", "closed"}),
    "wrap_up": frozenset({"closed"}),
    "closed": frozenset(),
}
LIVE = ("connecting", "active", "on_hold")
SESSION_ID_RE = re.compile(r"^[0-9a-f-]{36}$")
DISPOSITION_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# A freshly placed call counts against its node until the node's own count (refreshed every 3 s) has it.
PLACEMENT_HOLD_S = 10
PUSH_TTL_S = 24 * 3600
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TURN_TTL_S = 3600
# Deadlines of sessions still connecting (`connect_timeout` ends those whose media never came up).
CONNECT_DEADLINES = "sessions:connect_deadlines"


class NoVideoNode(ApiError):
    status, code = 503, "no_video_node"


def transition_allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


# -- video nodes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoNode:
    id: str
    url: str
    calls: int
    cpu: float
    draining: bool


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def live_nodes(redis: Redis) -> list[VideoNode]:
    """Nodes in the registry whose alive key exists (see docs/protocol.md), draining ones included."""
    raw = {_s(k): _s(v) for k, v in (await redis.hgetall("video:nodes")).items()}
    nodes: list[VideoNode] = []
    for node_id, text in sorted(raw.items()):
        try:
            info = json.loads(text)
            node = VideoNode(node_id, str(info["url"]), int(info.get("calls", 0)), float(info.get("cpu", 0.0)),
                             bool(info.get("draining", False)))
        except (ValueError, KeyError, TypeError):
            continue  # a half-written or foreign entry is not a node we can use
        if await redis.exists(f"video:node:{node_id}:alive"):
            nodes.append(node)
    return nodes


def _placements_key(node_id: str) -> str:
    # A sorted set of placements by time: each one counts for PLACEMENT_HOLD_S on its own (a counter
    # whose expiry every placement renews never drops under steady load, and a node that joins
    # later would then take every call until its count caught up).
    return f"video:node:{node_id}:placements"


async def pick_node(redis: Redis, now: float | None = None) -> VideoNode:
    """The live, non-draining node with the fewest calls (recent placements included); 503 if none.

    Call this before the ACD consumes an offer, so a refusal leaves the offer intact."""
    candidates = [n for n in await live_nodes(redis) if not n.draining]
    if not candidates:
        raise NoVideoNode("no video node is available; the call cannot start now (the offer stays open)",
                          retry_after=5)
    now = time.time() if now is None else now
    async with redis.pipeline(transaction=False) as pipe:
        for n in candidates:
            pipe.zcount(_placements_key(n.id), now - PLACEMENT_HOLD_S, "+inf")
        pending = [int(p) for p in await pipe.execute()]
    _, _, _, best = min((n.calls + p, n.cpu, n.id, n) for n, p in zip(candidates, pending, strict=True))
    key = _placements_key(best.id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {uuid.uuid4().hex: now})
        pipe.zremrangebyscore(key, "-inf", now - PLACEMENT_HOLD_S)
        pipe.expire(key, PLACEMENT_HOLD_S * 2)
        await pipe.execute()
    return best


async def node_by_id(redis: Redis, node_id: str) -> VideoNode | None:
    for node in await live_nodes(redis):
        if node.id == node_id:
            return node
    return None


# -- records -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    id: str
    ticket_id: str
    service: str
    customer: str
    teller_id: str
    video_node: str
    state: str
    disposition: str | None
    notes: str | None
    created_at: float
    ended_at: float | None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "ticket_id": self.ticket_id, "service": self.service, "state": self.state,
                "customer": self.customer, "teller_id": self.teller_id, "video_node": self.video_node,
                "disposition": self.disposition, "created_at": self.created_at, "ended_at": self.ended_at}


def _session(row: Any) -> Session:
    return Session(row.id, row.ticket_id, row.service, row.customer, row.teller_id or "", row.video_node or "",
                   row.state, row.disposition, row.notes, float(row.created_at),
                   float(row.ended_at) if row.ended_at is not None else None)


def actor(claims: Claims) -> str:
    """Who did it, for the audit chain: a person's user id, else the client's id."""
    return claims.sub if claims.role in ("teller", "supervisor", "admin") else f"{claims.role}:{claims.sub}"


def customer_client(claims: Claims) -> str | None:
    return f"{claims.role}:{claims.sub}" if claims.role in ("device", "phone") else None


class Sessions:
    """Session operations over the app's Redis, database, key ring and audit chain."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.redis: Redis = app[REDIS]
        self.engine = app[ENGINE]
        self.config = app[CONFIG]

    # -- reading and moving ------------------------------------------------------------------------

    async def get(self, session_id: str) -> Session:
        if not SESSION_ID_RE.match(session_id):
            raise NotFound("no such session")
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
        if row is None:
            raise NotFound("no such session")
        return _session(row)

    async def mine(self, claims: Claims) -> list[Session]:
        """The caller's sessions that are not closed (a console reloading finds its call), newest first."""
        customer = customer_client(claims)
        if customer is not None:
            where = sessions.c.customer == customer
        elif claims.role == "teller":
            where = sessions.c.teller_id == claims.sub
        else:
            return []
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(sessions).where(where, sessions.c.state != "closed")
                                       .order_by(sessions.c.created_at.desc()).limit(20))).all()
        return [_session(r) for r in rows]

    async def for_party(self, session_id: str, claims: Claims, parties: tuple[str, ...] = ("customer", "teller"),
                        ) -> tuple[Session, str]:
        """The session and the caller's party in it; someone else's session is a 404, as is an unknown one."""
        session = await self.get(session_id)
        is_customer = customer_client(claims) == session.customer
        is_teller = claims.role == "teller" and claims.sub == session.teller_id
        if not (is_customer or is_teller):
            if claims.role in ("supervisor", "admin"):
                raise Forbidden(f"only the session's {' or '.join(parties)} may do this")
            raise NotFound("no such session")
        party = "customer" if is_customer else "teller"
        if party not in parties:
            raise Forbidden(f"only the session's {' or '.join(parties)} may do this")
        return session, party

    async def move(self, session: Session, target: str, who: str, action: str,
                   details: dict[str, Any] | None = None, announce: bool = True, retry: bool = False,
                   **values: Any) -> Session:
        """Compare-and-set the state; 409 when the session is not in a state that allows `target`.

        announce=False leaves the session.update event to the caller (after its other changes).
        retry=True: when another move won the race (media came up as the teller hung up) and the new
        state still allows `target`, move from that one instead of refusing."""
        sources = [s for s, nxt in TRANSITIONS.items() if target in nxt]
        for _ in range(len(STATES)):  # each retry follows a move that happened: bounded by the states
            if session.state not in sources:
                raise Conflict(f"the session is {session.state}; it cannot go to {target}", state=session.state)
            async with self.engine.begin() as conn:
                res = await conn.execute(sessions.update().where(sessions.c.id == session.id,
                                                                 sessions.c.state == session.state)
                                         .values(state=target, **values))
            if res.rowcount == 1:
                break
            fresh = await self.get(session.id)
            if not retry or fresh.state not in sources:
                raise Conflict(f"the session is {fresh.state}; it cannot go to {target}", state=fresh.state)
            session = fresh
        else:
            raise Conflict(f"the session kept changing; it did not go to {target}", state=session.state)
        moved = await self.get(session.id)
        if target in ("wrap_up", "closed"):
            # Join tokens outlive the call by up to join_token_ttl_s: the video node checks this key.
            await self.redis.set(events.ended_key(session.id), "1", ex=max(3600, 2 * self.config.join_token_ttl_s))
        await self.app[AUDIT].append(who, action, f"session:{session.id}",
                                     {"from": session.state, "to": target, **(details or {})})
        if announce:
            await self.announce(moved)
        return moved

    async def announce(self, session: Session) -> None:
        await events.publish_to_session(self.redis, session.id, {"type": "session.update",
                                                                 "session": session.public()})

    # -- tokens ------------------------------------------------------------------------------------

    def ice_servers(self, client: str) -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = []
        if self.config.stun_urls:
            servers.append({"urls": list(self.config.stun_urls)})
        if self.config.turn_urls and self.config.turn_secret:
            # TURN REST credentials (coturn's use-auth-secret): valid for TURN_TTL_S, bound to the client.
            username, credential = turn_credentials(self.config.turn_secret, client, TURN_TTL_S)
            servers.append({"urls": list(self.config.turn_urls), "username": username, "credential": credential})
        return servers

    def video(self, session_id: str, node: VideoNode, client: str, party: str) -> dict[str, Any]:
        """What a party needs to join the room: the node's URL, a join token, ICE servers."""
        token = self.app[KEYS].issue(client, "join", f"session:{session_id}", self.config.join_token_ttl_s,
                                     party=party, node=node.id)
        return {"url": node.url, "token": token, "ice_servers": self.ice_servers(client),
                "node": node.id, "expires_in": self.config.join_token_ttl_s}

    # -- starting ----------------------------------------------------------------------------------

    async def start(self, ticket: Mapping[str, Any], teller_id: str, node: VideoNode | None = None,
                    ) -> dict[str, Any]:
        view = ticket.get("ticket") if isinstance(ticket.get("ticket"), Mapping) else {}
        assert isinstance(view, Mapping)
        ticket_id = str(ticket.get("id") or view.get("id") or "")
        service = str(ticket.get("queue") or ticket.get("service") or view.get("service") or "")
        customer = str(ticket.get("customer") or "")
        if not (ticket_id and service and customer and teller_id):
            raise ValueError("start_session needs the ticket's id, queue/service, customer and a teller id")
        node = node or await pick_node(self.redis)
        session_id = str(uuid.uuid4())
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(sessions.insert().values(
                id=session_id, ticket_id=ticket_id, service=service, customer=customer, teller_id=teller_id,
                video_node=node.id, state="connecting", created_at=now))
            # A transferred ticket's earlier leg is over for its teller, who is in wrap-up at the ACD now.
            earlier = (await conn.execute(sa.select(sessions).where(
                sessions.c.ticket_id == ticket_id, sessions.c.state == "transferring"))).all()
        for row in earlier:
            await self.move(_session(row), "wrap_up", "platform", "session.transferred", {"to": session_id})
        await self.redis.zadd(CONNECT_DEADLINES, {session_id: now + self.config.session_connect_timeout_s})
        teller_client = f"user:{teller_id}"
        await events.add_to_audience(self.redis, session_id, customer)
        await events.add_to_audience(self.redis, session_id, teller_client)
        session = await self.get(session_id)
        await self.app[AUDIT].append(teller_id, "session.started", f"session:{session_id}", {
            "ticket": ticket_id, "service": service, "customer": customer, "node": node.id})
        # No join token in the event: the event stream is kept (Redis, its AOF under the data folder),
        # and a token must not be; the customer gets theirs from `POST sessions/<id>/join`.
        await events.publish(self.redis, customer, {
            "type": "session.started", "session": session.public(), "teller_name": await self._name(teller_id)})
        return {"session": session.public(), "video": self.video(session_id, node, teller_client, "teller")}

    async def _name(self, user_id: str) -> str:
        """Who the customer talks to, as their screen names them: the display name, never the username."""
        try:
            return (await Directory(self.engine).get_user(user_id)).display_name
        except NotFound:
            return ""

    async def join(self, session_id: str, claims: Claims) -> dict[str, Any]:
        """A fresh join token for a party. When the session's node died, the call moves to a live
        node and the other party is told (`video.rejoin`) with its own fresh token."""
        session, party = await self.for_party(session_id, claims)
        if session.state not in LIVE:
            raise Conflict(f"the session is {session.state}; there is no call to join", state=session.state)
        node = await node_by_id(self.redis, session.video_node)
        if node is None:
            # None: another platform node (the node.down watcher) moved it a moment ago: use its choice.
            moved = await self.relocate(session, actor(claims), skip_party=party) or await self.get(session.id)
            node = await node_by_id(self.redis, moved.video_node) if moved.state in LIVE else None
            if node is None:
                # Retryable (not a 409, which clients take as "no call to join"): ask again shortly.
                raise NoVideoNode("the call is being moved to another video node; join again shortly",
                                  retry_after=2)
        client = session.customer if party == "customer" else f"user:{session.teller_id}"
        await self.app[AUDIT].append(actor(claims), "session.joined", f"session:{session.id}", {"party": party})
        return {"video": self.video(session.id, node, client, party)}

    async def relocate(self, session: Session, who: str, skip_party: str = "") -> Session | None:
        """Move a live call off its (dead) node to the best live one and send each party, except
        `skip_party` (who asked and gets its token in the reply), `video.rejoin` (its token is added as
        the events socket delivers it).
        Returns the moved session, or None when another node moved it first or it is over."""
        if session.state not in LIVE:
            return None
        node = await pick_node(self.redis)
        async with self.engine.begin() as conn:
            res = await conn.execute(sessions.update().where(
                sessions.c.id == session.id, sessions.c.video_node == session.video_node,
                sessions.c.state.in_(LIVE)).values(video_node=node.id))
        if res.rowcount != 1:
            return None  # someone else moved it (or it ended) in between
        await self.app[AUDIT].append(who, "session.moved", f"session:{session.id}",
                                     {"from_node": session.video_node, "to_node": node.id})
        moved = await self.get(session.id)
        for party, client in (("customer", session.customer), ("teller", f"user:{session.teller_id}")):
            if party != skip_party:
                # No token in the stream (it would be kept in Redis's AOF): the events socket adds a
                # fresh one for its client as it delivers the event.
                await events.publish(self.redis, client, {"type": "video.rejoin", "session": moved.public(),
                                                          "video": {"url": node.url, "node": node.id},
                                                          "party": party})
        return moved

    # -- the teller's moves ------------------------------------------------------------------------

    async def activate(self, session_id: str, claims: Claims) -> Session:
        session, _ = await self.for_party(session_id, claims)
        if session.state in ("active", "on_hold"):
            # Media came up again after a rejoin (a reload, a network change): nothing changes. A
            # held call stays held: only the teller's Resume brings the customer back.
            return session
        return await self.move(session, "active", actor(claims), "session.active")

    async def hold(self, session_id: str, claims: Claims) -> Session:
        session, _ = await self.for_party(session_id, claims, ("teller",))
        return await self.move(session, "on_hold", actor(claims), "session.hold")

    async def resume(self, session_id: str, claims: Claims) -> Session:
        session, _ = await self.for_party(session_id, claims, ("teller",))
        if session.state != "on_hold":
            raise Conflict(f"the session is {session.state}, not on hold", state=session.state)
        return await self.move(session, "active", actor(claims), "session.resume")

    async def end(self, session_id: str, claims: Claims) -> Session:
        """Either party hangs up: the teller goes to wrap-up (at the ACD too)."""
        session, party = await self.for_party(session_id, claims)
        moved = await self.finish(session, actor(claims), party, "session.ended")
        if party == "customer":
            # A customer who hangs up while being transferred leaves the queue the call was sent
            # to (the ticket waits there, or rings a teller, for nobody otherwise).
            await acd_link.abandon_waiting(self.app, session.ticket_id)
        return moved

    async def finish(self, session: Session, who: str, by: str, action: str, reason: str = "") -> Session:
        """End the call: the session and its teller (at the ACD) go to wrap-up, then both parties
        are told `session.ended {by, reason?}`."""
        # retry: hanging up must win over the activate that media coming up sends at the same moment
        # (a 409 there made the console show its wrap-up while the call and the ACD stayed busy).
        details = {"by": by, **({"reason": reason} if reason else {})}
        try:
            moved = await self.move(session, "wrap_up", who, action, details, announce=False, retry=True)
        except Conflict as exc:
            if exc.details.get("state") in ("wrap_up", "closed"):
                # Ended already, maybe by a platform node that died before telling the ACD: a retry
                # finishes that part, or the teller would stay busy with a call that is over.
                await acd_link.call_ended(self.app, session.teller_id, session.ticket_id)
            raise
        note = await acd_link.call_ended(self.app, session.teller_id, session.ticket_id)
        if note:
            await self.app[AUDIT].append("platform", "session.acd_note", f"session:{session.id}", {"acd": note})
        # Told only now: a console that shows its wrap-up on this event and asks the ACD finds the
        # teller in wrap-up, not still "in a call".
        await self.announce(moved)
        await events.publish_to_session(self.redis, session.id, {"type": "session.ended", **details,
                                                                 "session": moved.public()})
        return moved

    async def transfer(self, session_id: str, claims: Claims, queue: str | None, teller: str | None,
                       ) -> dict[str, Any]:
        if (queue is None) == (teller is None):
            raise BadRequest("transfer to either a queue or a teller")
        session, _ = await self.for_party(session_id, claims, ("teller",))
        if not transition_allowed(session.state, "transferring"):
            raise Conflict(f"the session is {session.state}; it cannot be transferred", state=session.state)
        if queue is not None:
            await ensure_queue(self.app, queue)  # a service made since the matcher last synced queues
        ticket = await acd_link.transfer(self.app, session.ticket_id, queue, teller)
        try:
            moved = await self.move(session, "transferring", actor(claims), "session.transfer",
                                    {"to_queue": queue, "to_teller": teller})
        except Conflict:
            # The customer hung up as the ticket was re-queued: take it out of the new queue.
            await acd_link.abandon_waiting(self.app, session.ticket_id)
            raise
        return {"session": moved.public(), "ticket": ticket}

    async def wrapup(self, session_id: str, claims: Claims, disposition: str, notes: str, service_done: bool,
                     not_ready: bool, reason: str) -> Session:
        session, _ = await self.for_party(session_id, claims, ("teller",))
        if not DISPOSITION_RE.match(disposition):
            raise BadRequest("disposition must be a code of a-z, 0-9, '_', '.' or '-'", field="disposition")
        if session.state not in ("wrap_up", "transferring"):
            raise Conflict(f"the session is {session.state}; end the call before wrapping up", state=session.state)
        moved = await self.move(session, "closed", actor(claims), "session.wrapup",
                                {"disposition": disposition, "service_done": service_done, "notes": notes},
                                disposition=disposition, notes=notes, ended_at=time.time())
        note = await acd_link.wrapup_done(self.app, session.teller_id, not_ready, reason)
        if note:
            await self.app[AUDIT].append("platform", "session.acd_note", f"session:{session.id}", {"acd": note})
        return moved

    # -- supervisors -------------------------------------------------------------------------------

    async def supervises(self, claims: Claims, service: str) -> bool:
        if claims.role != "supervisor":
            return False
        user = await Directory(self.engine).get_user(claims.sub)
        return not user.disabled and (not user.queues or service in user.queues)

    async def monitor(self, session_id: str, claims: Claims) -> dict[str, Any]:
        """A supervisor of the session's queue joins silently (recvonly at the video node)."""
        session = await self.get(session_id)
        if not await self.supervises(claims, session.service):
            raise Forbidden("only a supervisor of this queue may monitor the call")
        if session.state not in LIVE:
            raise Conflict(f"the session is {session.state}; there is no call to monitor", state=session.state)
        node = await node_by_id(self.redis, session.video_node)
        if node is None:
            raise NoVideoNode("the call's video node is down; the parties are being moved, try again shortly",
                              retry_after=5)
        client = f"user:{claims.sub}"
        await events.add_to_audience(self.redis, session.id, client)
        await self.app[AUDIT].append(claims.sub, "session.monitor", f"session:{session.id}", {})
        return {"session": session.public(), "video": self.video(session.id, node, client, "supervisor")}


# -- dead video nodes -------------------------------------------------------------------------------

VIDEO_EVENTS = "video:events"
WATCH_GROUP = "platform"
WATCH_BLOCK_MS = 1000
# A node.down another platform node took but never acknowledged (it died) is taken over after this.
WATCH_CLAIM_IDLE_MS = 30_000


async def handle_video_event(app: web.Application, fields: Mapping[str, Any]) -> int:
    """React to one `video:events` entry; returns how many calls were moved."""
    if _s(fields.get("type", "")) != "node.down":
        return 0
    node_id = _s(fields.get("node", ""))
    try:
        ids = [str(i) for i in json.loads(_s(fields.get("sessions", "[]")))]
    except ValueError:
        return 0
    svc, count = Sessions(app), 0
    for session_id in ids[:10_000]:
        try:
            session = await svc.get(session_id)
        except NotFound:
            continue
        if session.video_node == node_id and await svc.relocate(session, "platform"):
            count += 1
    return count


class _Watcher:
    """The watch loop of one app; `stop()` ends it between passes, or at once while it only waits."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.redis: Redis = app[REDIS]
        self.consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.stopping = False
        self.waiting = False
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        redis, passes = self.redis, 0
        while not self.stopping:
            try:
                batch: list[tuple[Any, dict[Any, Any]]] = []
                if passes == 0:
                    # Here, not at start-up: the app must start (and report Redis down) without Redis.
                    await _ensure_watch_group(redis)
                if passes % 10 == 0:
                    claimed = await redis.xautoclaim(VIDEO_EVENTS, WATCH_GROUP, self.consumer,
                                                     WATCH_CLAIM_IDLE_MS, start_id="0-0", count=10)
                    batch += list(claimed[1])
                passes += 1
                self.waiting = True
                try:
                    reply: Any = await redis.xreadgroup(WATCH_GROUP, self.consumer, {VIDEO_EVENTS: ">"},
                                                        count=10, block=WATCH_BLOCK_MS)
                finally:
                    self.waiting = False
                for _stream, entries in reply or []:
                    batch += list(entries)
                for entry_id, fields in batch:
                    await handle_video_event(self.app, {_s(k): v for k, v in fields.items()})
                    await redis.xack(VIDEO_EVENTS, WATCH_GROUP, entry_id)
            except NoVideoNode:
                log.warning("a video node died and no other is live: its calls wait for one")
                await asyncio.sleep(1.0)
            except REDIS_DOWN as exc:
                log.warning("watching video nodes paused: Redis unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
            except Exception:  # noqa: BLE001 - keep watching through a Redis or database hiccup
                log.exception("watching video nodes failed; retrying")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        # Never cancel inside a database transaction; a blocked XREADGROUP may be cancelled (an
        # unacknowledged entry is claimed again later).
        self.stopping = True
        assert self.task is not None
        if self.waiting:
            self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=WATCH_BLOCK_MS / 1000 + 5)
        if not done:
            self.task.cancel()
            await asyncio.wait({self.task})


async def _ensure_watch_group(redis: Redis) -> None:
    try:
        await redis.xgroup_create(VIDEO_EVENTS, WATCH_GROUP, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def node_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """While the app runs, move the calls of video nodes that die (`node.down` from the registry's
    sweeper) to live nodes. One consumer group: each death is handled by one platform node."""
    watcher = _Watcher(app)
    watcher.task = asyncio.create_task(watcher.run(), name="video-node-watch")
    yield
    await watcher.stop()


async def start_session(app: web.Application, ticket: Mapping[str, Any], teller_id: str,
                        node: VideoNode | None = None) -> dict[str, Any]:
    """Create a session for an accepted ticket; returns the teller's `{session, video}`.

    `ticket` is what `Router.accept` returns (its raw fields: id, queue, customer, ...). The
    customer gets `session.started` and joins with `POST sessions/<id>/join`. No live video node is a 503
    (`NoVideoNode`) raised before anything is written; to keep the offer intact, pick the node
    first (`node = await pick_node(app[REDIS])`) and pass it here after the ACD accepted."""
    return await Sessions(app).start(ticket, teller_id, node)
