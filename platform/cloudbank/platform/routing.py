"""Queueing and routing (the ACD): tickets, teller states, offers, ring-no-answer, transfers, call-backs.

All state lives in Redis and every change is one Lua script (`routing_lua`), so any number of
platform nodes can share the work: a ticket is never offered to two tellers and a teller never
holds two offers. Matching runs when a ticket arrives, when a teller becomes ready and on the
matcher's timer (`tick()`), so nothing is stranded if a node dies in between.

Order in a queue: score = enter time - the priority class's boost. A VIP (boost 300 s) goes ahead
of normal tickets that arrived less than 300 s before it, never further: that is ageing, and
nobody waits for ever. A ticket that is offered and not taken goes back with the same score,
so it keeps its old place. Which ready teller gets the head ticket is the queue's strategy:
`longest_idle`, `fewest_calls` (today) or `skill_level` (highest level, then longest idle).

Teller states: offline, ready, not_ready (reason), offered, busy, wrap_up. An unanswered offer
makes the teller not_ready with reason "ring_no_answer"; a declined one, reason "declined".
Wrap-up lasts the queue's `wrapup_s`; then ready, unless the teller asked for not-ready meanwhile.

Events: `offer` / `offer.expired` to the teller (`user:<id>`), `ticket.update` (and once
`ticket.callback_offer`) to the customer's client id, whenever position or wait changes.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from cloudbank.platform import events, routing_lua
from cloudbank.platform.errors import ApiError, BadRequest, Conflict, NotFound

PRIORITY_BOOST_S: Mapping[str, float] = {"normal": 0.0, "elderly": 120.0, "vip": 300.0}
STRATEGIES = ("longest_idle", "fewest_calls", "skill_level")
TELLER_STATES = ("offline", "ready", "not_ready", "offered", "busy", "wrap_up")
CHANNELS = ("kiosk", "phone")
TICKET_TTL_S = 24 * 3600
POSITION_PUSH_MIN_S = 1.0
PUBLISH_BATCH = 500
MAX_CALLBACK_AHEAD_S = 7 * 24 * 3600
P = "acd:"

_ERRORS: dict[str, ApiError] = {
    "no_queue": NotFound("no such service queue; GET services lists them"),
    "no_ticket": NotFound("no such ticket"),
    "not_waiting": Conflict("the ticket is not waiting in a queue"),
    "no_callback_offer": Conflict("this ticket was not offered a call-back (the forecast wait is short)"),
    "offered": Conflict("you have an offer ringing: accept or decline it first"),
    "busy": Conflict("you are in a call: end it first (not_ready is kept for after the call)"),
    "no_offer": NotFound("no such offer for you"),
    "expired": Conflict("the offer has expired"),
    "not_busy": Conflict("you are not in this call"),
    "no_teller": NotFound("no such teller to transfer to"),
    "not_wrap_up": Conflict("you are not in wrap-up"),
}


class ServiceLike(Protocol):
    """What routing needs from a catalogue service (`catalogue.Service` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def skill(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def ring_timeout_s(self) -> float: ...
    @property
    def wrapup_s(self) -> float: ...
    @property
    def expected_handle_s(self) -> float: ...


@dataclass(frozen=True)
class QueueSpec:
    """How one service's queue routes."""

    code: str
    skill: str
    strategy: str = "longest_idle"
    ring_timeout_s: float = 20.0
    wrapup_s: float = 30.0
    expected_handle_s: float = 300.0

    @classmethod
    def of(cls, svc: ServiceLike) -> QueueSpec:
        return cls(svc.code, svc.skill, svc.strategy, svc.ring_timeout_s, svc.wrapup_s, svc.expected_handle_s)


@dataclass(frozen=True)
class TickResult:
    offers: int
    expired: int
    woke: int
    called_back: int


def skills_text(skills: Mapping[str, int]) -> str:
    """Skills as the scripts keep them: "code=level,..." (levels below 1 mean no skill)."""
    for code in skills:
        if not code or any(c in code for c in ",= ") or len(code) > 64:
            raise BadRequest(f"bad skill code {code[:64]!r}")
    return ",".join(f"{code}={int(level)}" for code, level in sorted(skills.items()) if int(level) >= 1)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Router:
    """The ACD over one Redis. Stateless itself: make one per app, or per call, as you like."""

    def __init__(self, redis: Redis, *, clock: Callable[[], float] = time.time,
                 priorities: Mapping[str, float] = PRIORITY_BOOST_S, callback_threshold_s: float = 600.0,
                 publish: bool = True) -> None:
        self.redis = redis
        self.clock = clock
        self.priorities = dict(priorities)
        self.callback_threshold_s = callback_threshold_s
        self.publish = publish
        self._publish_flag = "1" if publish else "0"
        # script name -> (sha1, text): EVALSHA directly, loading the script only when Redis lacks it
        self._scripts: dict[str, tuple[str, str]] = {}
        for name in ("ENQUEUE", "SET_STATE", "ACCEPT", "DECLINE", "TICK", "ABANDON", "CALLBACK",
                     "PRIORITY", "CALL_ENDED", "WRAPUP_DONE", "UNDO_ACCEPT"):
            text = routing_lua.PRELUDE + getattr(routing_lua, name)
            self._scripts[name] = (hashlib.sha1(text.encode()).hexdigest(), text)

    # -- plumbing -----------------------------------------------------------------------------------

    async def _run(self, name: str, *args: Any) -> dict[str, Any]:
        now = self.clock()
        day = time.strftime("%Y-%m-%d", time.localtime(now))
        prefix = secrets.token_hex(6) + "-"
        sha, text = self._scripts[name]
        argv = (repr(now), day, prefix, self._publish_flag, *[str(a) for a in args])
        try:
            raw = await self.redis.evalsha(sha, 0, *argv)
        except NoScriptError:  # a restarted or flushed Redis: load it; the next calls find it
            await self.redis.script_load(text)
            raw = await self.redis.evalsha(sha, 0, *argv)
        result: dict[str, Any] = json.loads(_s(raw))
        if "err" in result:
            raise _ERRORS[result["err"]].__class__(_ERRORS[result["err"]].message, reason=result["err"])
        for key in ("made", "expired", "woke", "called"):
            if result.get(key) == {}:  # cjson writes an empty Lua table as {}
                result[key] = []
        for key in ("teller", "ticket"):  # HGETALL replies come as flat [field, value, ...] lists
            if isinstance(result.get(key), list):
                flat = result[key]
                result[key] = dict(zip(flat[::2], flat[1::2], strict=True))
        return result

    async def _announce(self, result: Mapping[str, Any]) -> None:
        """Tell tellers about ended offers, and customers about their tickets. (New offers were
        announced by the script itself: `routing_lua.PRELUDE`'s `offer`.)"""
        if not self.publish:
            return
        ended = list(result.get("expired", []))
        if result.get("cancelled"):
            ended.append({**result["cancelled"], "cancelled": True})
        if result.get("released"):
            ended.append(result["released"])
        for off in ended:
            await events.publish(self.redis, f"user:{off['teller_id']}", {
                "type": "offer.expired", "offer_id": off["offer_id"], "ticket_id": off["ticket_id"],
                "reason": "cancelled" if off.get("cancelled") else "ring_no_answer"})
            if not off.get("cancelled"):
                await self._push_teller(off["teller_id"])
        for teller in result.get("woke", []):
            await self._push_teller(teller)
        for tid in result.get("called", []):
            await self._push_ticket(tid)

    async def _push_ticket(self, ticket_id: str) -> None:
        if not self.publish:
            return
        view = await self.ticket(ticket_id)
        await events.publish(self.redis, view["customer"], {"type": "ticket.update", "ticket": view["ticket"]})
        await self.redis.hset(f"{P}pushed", ticket_id, f"{view['ticket']['position']}:"
                                                       f"{view['ticket']['estimated_wait_s']}")

    async def _push_teller(self, teller_id: str) -> None:
        if not self.publish:
            return
        await events.publish(self.redis, f"user:{teller_id}", {"type": "teller.state",
                                                              "teller": await self.teller(teller_id)})

    # -- queues -------------------------------------------------------------------------------------

    async def configure_queue(self, spec: QueueSpec) -> None:
        """Create or update a queue (from the catalogue). Moving a queue to another skill is allowed."""
        if spec.strategy not in STRATEGIES:
            raise BadRequest(f"strategy must be one of {', '.join(STRATEGIES)}")
        skills_text({spec.skill: 1})
        old = await self.redis.hget(f"{P}qs:{spec.code}", "skill")
        async with self.redis.pipeline(transaction=True) as pipe:
            if old is not None and _s(old) != spec.skill:
                pipe.srem(f"{P}skillq:{_s(old)}", spec.code)
            pipe.hset(f"{P}qs:{spec.code}", mapping={
                "skill": spec.skill, "strategy": spec.strategy, "ring_s": repr(float(spec.ring_timeout_s)),
                "wrapup_s": repr(float(spec.wrapup_s)), "aht_s": repr(float(spec.expected_handle_s))})
            pipe.sadd(f"{P}queues", spec.code)
            pipe.sadd(f"{P}skillq:{spec.skill}", spec.code)
            await pipe.execute()

    async def sync_catalogue(self, services: Iterable[ServiceLike]) -> None:
        for svc in services:
            await self.configure_queue(QueueSpec.of(svc))

    async def queue_codes(self) -> list[str]:
        return sorted(_s(q) for q in await self.redis.smembers(f"{P}queues"))

    async def queue_spec(self, code: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(f"{P}qs:{code}")
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    # -- tickets ------------------------------------------------------------------------------------

    async def enqueue(self, *, service: str, customer: str, channel: str, priority: str = "normal",
                      branch: str = "") -> dict[str, Any]:
        """A customer asks for `service`; returns the ticket view (position, estimated wait)."""
        if priority not in self.priorities:
            raise BadRequest(f"priority must be one of {', '.join(self.priorities)}", field="priority")
        if channel not in CHANNELS:
            raise BadRequest(f"channel must be one of {', '.join(CHANNELS)}")
        now = self.clock()
        boost = self.priorities[priority]
        fields = {"customer": customer, "channel": channel, "priority": priority, "branch": branch,
                  "enq": repr(now), "boost": repr(boost)}
        result = await self._run("ENQUEUE", secrets.token_hex(12), service, f"{now - boost:.3f}",
                                 json.dumps(fields))
        tid = str(result["ticket_id"])
        raw = {**fields, "id": tid, "queue": service, "state": "waiting"}
        position = int(result["position"])
        if position == 0:  # matched at once: the offer event carries its view
            raw["state"] = "offered"
        wait = estimate_wait(position, float(result["aht_s"]), int(result["staffed"])) if position else 0
        if channel == "phone" and position and wait > self.callback_threshold_s:
            await self.redis.hset(f"{P}t:{tid}", "callback_offer", "1")
            raw["callback_offer"] = "1"
        view = self._view(raw, position, wait, int(result["staffed"]))
        if self.publish and raw.get("callback_offer"):
            await events.publish(self.redis, customer, {"type": "ticket.callback_offer", "ticket": view})
        await self._announce(result)
        return view

    async def ticket(self, ticket_id: str, customer: str | None = None) -> dict[str, Any]:
        """`{"ticket": public view, "customer": client id, ...raw}`; 404 for unknown or someone else's."""
        raw = {_s(k): _s(v) for k, v in (await self.redis.hgetall(f"{P}t:{ticket_id}")).items()}
        if not raw or (customer is not None and raw.get("customer") != customer):
            raise NotFound("no such ticket")
        position, wait, staffed = 0, 0, None
        if raw["state"] == "waiting":
            position, wait, staffed = await self._position(raw)
        view = self._view(raw, position, wait, staffed)
        return {"ticket": view, "customer": raw["customer"], "raw": raw}

    def _view(self, raw: Mapping[str, str], position: int, wait: int, staffed: int | None = None) -> dict[str, Any]:
        """The customer's view of a ticket (the `ticket` of the protocol). `staffed`: how many tellers
        with the queue's skill are signed in (None: not known here); none makes `staffed: false`, so
        the customer reads "nobody can serve this now" instead of a forecast nobody will meet."""
        now = self.clock()
        view: dict[str, Any] = {
            "id": raw["id"], "service": raw["queue"], "state": raw["state"], "position": position,
            "estimated_wait_s": wait, "channel": raw["channel"], "priority": raw["priority"],
            "waited_s": round(max(0.0, float(raw.get("ended") or now) - float(raw["enq"])), 1)
            if raw["state"] in ("waiting", "offered", "abandoned") else None,
        }
        if staffed is not None and raw["state"] == "waiting":
            view["staffed"] = staffed > 0
        if raw.get("callback_offer") == "1":
            view["callback_offer"] = {"threshold_s": self.callback_threshold_s}
        if raw.get("callback_at"):
            view["callback_at"] = float(raw["callback_at"])
        return view

    async def _position(self, raw: Mapping[str, str]) -> tuple[int, int, int | None]:
        pq = raw.get("pq") or ""
        key = f"{P}pq:{pq}" if pq else f"{P}q:{raw['queue']}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrank(key, raw["id"])
            pipe.hmget(f"{P}qs:{raw['queue']}", "skill", "aht_s")
            rank, (skill, aht) = await pipe.execute()
        if rank is None:
            return 0, 0, None
        if pq:  # waiting for one teller (a transfer to them): that teller is there
            return int(rank) + 1, estimate_wait(int(rank) + 1, float(aht or 300), 1), 1
        staffed = int(await self.redis.scard(f"{P}staffed:{_s(skill)}"))
        return int(rank) + 1, estimate_wait(int(rank) + 1, float(aht or 300), staffed), staffed

    async def abandon(self, ticket_id: str, customer: str | None = None) -> dict[str, Any]:
        """The customer leaves (counted as abandoned with the time waited)."""
        result = await self._run("ABANDON", ticket_id, customer or "")
        await self._announce(result)
        view = await self.ticket(ticket_id)
        await self._publish_view(view)
        return dict(view["ticket"])

    async def set_priority(self, ticket_id: str, priority: str) -> dict[str, Any]:
        """Put a waiting ticket in another priority class (a staff decision; customers cannot)."""
        if priority not in self.priorities:
            raise BadRequest(f"priority must be one of {', '.join(self.priorities)}", field="priority")
        await self._run("PRIORITY", ticket_id, priority, repr(self.priorities[priority]))
        view = await self.ticket(ticket_id)
        await self._publish_view(view)
        return dict(view["ticket"])

    async def book_callback(self, ticket_id: str, customer: str, at: float | None = None) -> dict[str, Any]:
        """Leave the queue and be queued again at `at` (default: when the forecast wait is over)."""
        view = await self.ticket(ticket_id, customer)
        now = self.clock()
        if at is None:
            at = now + max(1.0, float(view["ticket"]["estimated_wait_s"]))
        if not now < at <= now + MAX_CALLBACK_AHEAD_S:
            raise BadRequest("'at' must be a time (epoch seconds) in the next 7 days", field="at")
        await self._run("CALLBACK", ticket_id, customer, f"{at:.3f}")
        await self.redis.expire(f"{P}t:{ticket_id}", int(at - now) + TICKET_TTL_S)
        view = await self.ticket(ticket_id)
        await self._publish_view(view)
        return dict(view["ticket"])

    async def _publish_view(self, view: Mapping[str, Any]) -> None:
        if self.publish:
            await events.publish(self.redis, view["customer"], {"type": "ticket.update", "ticket": view["ticket"]})

    # -- tellers ------------------------------------------------------------------------------------

    async def set_state(self, teller_id: str, state: str, reason: str = "",
                        skills: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Teller asks for ready / not_ready (reason) / offline; `skills` refreshes their skills.

        Busy tellers asking for not_ready get it after the call (`pending`)."""
        if state not in ("ready", "not_ready", "offline"):
            raise BadRequest("state must be ready, not_ready or offline", field="state")
        if state == "not_ready" and not reason:
            reason = "break"
        result = await self._run("SET_STATE", teller_id, state, reason,
                                 "-" if skills is None else skills_text(skills))
        await self._announce(result)
        view = self._teller_view(teller_id, result["teller"])
        view["pending"] = bool(result.get("pending"))
        return view

    async def teller(self, teller_id: str) -> dict[str, Any]:
        """The teller's state, reason, skills, current offer or ticket and today's counts."""
        raw = {_s(k): _s(v) for k, v in (await self.redis.hgetall(f"{P}u:{teller_id}")).items()}
        return self._teller_view(teller_id, raw)

    def _teller_view(self, teller_id: str, raw: Mapping[str, str]) -> dict[str, Any]:
        today = time.strftime("%Y-%m-%d", time.localtime(self.clock()))
        fresh = raw.get("day") == today
        skills = {k: int(v) for k, v in (p.split("=") for p in raw.get("skills", "").split(",") if p)}
        return {
            "id": teller_id, "state": raw.get("state", "offline"), "reason": raw.get("reason", ""),
            "since": float(raw["since"]) if raw.get("since") else None, "skills": skills,
            "offer_id": raw.get("offer") or None, "ticket_id": raw.get("ticket") or None,
            "after_call": raw.get("after") or None,
            "wrapup_until": float(raw["wrapup_until"]) if raw.get("state") == "wrap_up" else None,
            "today": {k: (float(raw.get(k, 0)) if k == "handle_s" else int(raw.get(k, 0))) if fresh else 0
                      for k in ("calls", "offered", "missed", "declined", "handle_s")},
        }

    async def check_offer(self, offer_id: str, teller_id: str) -> None:
        """Refuse (404/409) an offer that is not this teller's or has expired, without changing anything."""
        teller, expires = await self.redis.hmget(f"{P}o:{offer_id}", "teller", "expires")
        if teller is None or _s(teller) != teller_id:
            raise NotFound(_ERRORS["no_offer"].message, reason="no_offer")
        if self.clock() > float(_s(expires)):
            raise Conflict(_ERRORS["expired"].message, reason="expired")

    async def accept(self, offer_id: str, teller_id: str) -> dict[str, Any]:
        """The teller takes the call; returns the ticket's raw fields (customer, queue, channel...)."""
        # the script sends the customer their connected view itself
        result = await self._run("ACCEPT", offer_id, teller_id, repr(float(self.callback_threshold_s)))
        raw = result["ticket"]
        return {**raw, "ticket": self._view(raw, 0, 0)}

    async def undo_accept(self, teller_id: str, ticket_id: str, reason: str = "session_failed") -> None:
        """The call could not start: the ticket goes back to its place, the teller to not-ready."""
        result = await self._run("UNDO_ACCEPT", teller_id, ticket_id, reason)
        await self._announce(result)
        await self._push_ticket(ticket_id)
        await self._push_teller(teller_id)

    async def decline(self, offer_id: str, teller_id: str) -> dict[str, Any]:
        result = await self._run("DECLINE", offer_id, teller_id)
        await self._announce({**result, "released": None})
        await self._push_ticket(result["released"]["ticket_id"])
        return self._teller_view(teller_id, result["teller"])

    async def call_ended(self, teller_id: str, ticket_id: str | None = None) -> dict[str, Any]:
        """The call is over: the ticket is done and the teller goes to wrap-up."""
        result = await self._run("CALL_ENDED", teller_id, ticket_id or "", "", "")
        await self._announce(result)
        return self._teller_view(teller_id, result["teller"])

    async def complete(self, ticket_id: str) -> dict[str, Any]:
        """Same as `call_ended` for the teller who has this ticket."""
        teller = await self.redis.hget(f"{P}t:{ticket_id}", "teller")
        if not teller:
            raise NotFound("no such ticket in a call")
        return await self.call_ended(_s(teller), ticket_id)

    async def transfer(self, ticket_id: str, *, to_queue: str | None = None,
                       to_teller: str | None = None) -> dict[str, Any]:
        """Re-queue a connected ticket to another queue or teller, keeping its age and priority.
        The teller who had it goes to wrap-up."""
        if (to_queue is None) == (to_teller is None):
            raise BadRequest("transfer to either a queue or a teller")
        teller = await self.redis.hget(f"{P}t:{ticket_id}", "teller")
        if not teller:
            raise NotFound("no such ticket in a call")
        result = await self._run("CALL_ENDED", _s(teller), ticket_id, to_queue or "", to_teller or "")
        await self._announce(result)
        view = await self.ticket(ticket_id)
        await self._publish_view(view)
        return dict(view["ticket"])

    async def wrapup_done(self, teller_id: str, not_ready: bool = False, reason: str = "") -> dict[str, Any]:
        """End wrap-up early: ready (and matched at once) or not_ready."""
        result = await self._run("WRAPUP_DONE", teller_id, "1" if not_ready else "0", reason)
        await self._announce(result)
        return self._teller_view(teller_id, result["teller"])

    # -- the timer ----------------------------------------------------------------------------------

    async def tick(self, limit: int = 200) -> TickResult:
        """Expire offers, end wrap-ups, queue due call-backs, match what can be matched."""
        result = await self._run("TICK", limit)
        await self._announce(result)
        return TickResult(len(result["made"]), len(result["expired"]), len(result["woke"]), len(result["called"]))

    async def push_positions(self, max_queues: int = 100, min_interval_s: float = POSITION_PUSH_MIN_S) -> int:
        """Send `ticket.update` to each waiting customer whose position or wait changed; returns how many.

        Changes are coalesced: a queue is re-read at most every `min_interval_s` (it stays dirty
        meanwhile), so a customer gets the latest position rather than one event per step."""
        pushed = 0
        now = self.clock()
        deferred: list[str] = []
        for _ in range(max_queues):
            queue = await self.redis.spop(f"{P}dirty")
            if queue is None:
                break
            code = _s(queue)
            last = await self.redis.hget(f"{P}pushed_at", code)
            if last is not None and now - float(_s(last)) < min_interval_s:
                deferred.append(code)
                continue
            await self.redis.hset(f"{P}pushed_at", code, repr(now))
            pushed += await self._push_queue(code)
        if deferred:
            await self.redis.sadd(f"{P}dirty", *deferred)
        return pushed

    async def _push_queue(self, code: str) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(f"{P}q:{code}", 0, -1)
            pipe.hmget(f"{P}qs:{code}", "skill", "aht_s")
            ids, (skill, aht) = await pipe.execute()
        ids = [_s(i) for i in ids]
        if not ids:
            return 0
        staffed = int(await self.redis.scard(f"{P}staffed:{_s(skill)}"))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(f"{P}pushed", ids)
            for tid in ids:
                pipe.hgetall(f"{P}t:{tid}")
            replies = await pipe.execute()
        changed: list[tuple[str, dict[str, Any]]] = []
        marks: dict[str, str] = {}
        for pos, (tid, was, raw_b) in enumerate(zip(ids, replies[0], replies[1:], strict=True), start=1):
            raw = {_s(k): _s(v) for k, v in raw_b.items()}
            if raw.get("state") != "waiting":
                continue
            wait = estimate_wait(pos, float(aht or 300), staffed)
            mark = f"{pos}:{wait}:{int(staffed > 0)}"
            if was is not None and _s(was) == mark:
                continue
            changed.append((raw["customer"], self._view(raw, pos, wait, staffed)))
            marks[tid] = mark
        if self.publish:
            for i in range(0, len(changed), PUBLISH_BATCH):
                await events.publish_batch(self.redis, [(customer, {"type": "ticket.update", "ticket": view})
                                                        for customer, view in changed[i:i + PUBLISH_BATCH]])
        if marks:
            await self.redis.hset(f"{P}pushed", mapping=marks)  # type: ignore[arg-type]
        return len(changed)

    async def snapshot(self) -> dict[str, Any]:
        """Queues (waiting, longest wait, tellers by state) and tellers, for the wallboard."""
        now = self.clock()
        codes = await self.queue_codes()
        tellers = sorted(_s(t) for t in await self.redis.smembers(f"{P}tellers"))
        teller_views = [await self.teller(t) for t in tellers]
        queues: dict[str, Any] = {}
        for code in codes:
            spec = await self.queue_spec(code) or {}
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(f"{P}q:{code}")
                pipe.zrange(f"{P}q:{code}", 0, 0, withscores=True)
                waiting, head = await pipe.execute()
            # score = enter time - boost, so whoever entered first is within the largest boost of the
            # head: read those tickets, not the whole queue, on every wallboard push
            ids = await self.redis.zrangebyscore(f"{P}q:{code}", head[0][1],
                                                 head[0][1] + max(self.priorities.values(), default=0.0),
                                                 ) if head else []
            longest = 0.0
            if ids:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for tid in ids:
                        pipe.hget(f"{P}t:{_s(tid)}", "enq")
                    enqs = [float(_s(e)) for e in await pipe.execute() if e is not None]
                longest = max((now - e for e in enqs), default=0.0)
            by_state = dict.fromkeys(TELLER_STATES, 0)
            for tv in teller_views:
                if spec.get("skill") in tv["skills"]:
                    by_state[tv["state"]] += 1
            queues[code] = {"waiting": int(waiting), "longest_wait_s": round(longest, 1),
                            "skill": spec.get("skill"), "strategy": spec.get("strategy"), "tellers": by_state}
        return {"at": now, "queues": queues, "tellers": teller_views}


async def staffed_skills(redis: Redis, skills: Sequence[str]) -> dict[str, int]:
    """How many tellers with each skill are signed in (ready, busy or not ready; not offline)."""
    async with redis.pipeline(transaction=False) as pipe:
        for skill in skills:
            pipe.scard(f"{P}staffed:{skill}")
        counts = await pipe.execute()
    return {skill: int(n) for skill, n in zip(skills, counts, strict=True)}


def estimate_wait(position: int, handle_s: float, staffed: int) -> int:
    """Forecast wait: the tickets ahead (and this one) served by the staffed tellers in parallel."""
    return int(math.ceil(position * handle_s / max(1, staffed)))


ROUTER = web.AppKey("acd_router", Router)
