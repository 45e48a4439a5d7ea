"""The ACD core against a real Redis: matching, strategies, priority ageing, ring-no-answer, abandon,
call-back, wrap-up, transfer, and no double offers when two nodes race."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from cloudbank.platform import events
from cloudbank.platform.errors import BadRequest, Conflict, NotFound
from cloudbank.platform.queue_log import QueueLog
from cloudbank.platform.routing import QueueSpec, Router

T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def router(redis_client: redis.asyncio.Redis, clock: Clock) -> Router:
    r = Router(redis_client, clock=clock, callback_threshold_s=600)
    await r.configure_queue(QueueSpec("general", "general", "longest_idle", ring_timeout_s=20, wrapup_s=30,
                                      expected_handle_s=300))
    return r


@pytest.fixture
async def second_node(redis_url: str, clock: Clock) -> AsyncIterator[Router]:
    """A router on its own connection pool: another platform node on the same Redis."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield Router(client, clock=clock, callback_threshold_s=600)
    await client.aclose()


async def offers_to(r: Router, teller: str) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(r.redis, f"user:{teller}") if e["type"].startswith("offer")]


async def log_events(r: Router) -> list[tuple[str, str, str | None]]:
    return [(e.event, e.ticket_id, e.teller_id) for e in await QueueLog(r.redis).recent(0)]


async def enqueue(r: Router, customer: str = "device:k1", **kw: Any) -> str:
    kw.setdefault("service", "general")
    kw.setdefault("channel", "kiosk")
    return str((await r.enqueue(customer=customer, **kw))["id"])


async def test_ticket_then_ready_teller_gets_an_offer_with_the_contract_fields(router: Router, clock: Clock) -> None:
    tid = await enqueue(router, branch="demo")
    assert (await router.ticket(tid))["ticket"]["position"] == 1
    clock.now += 7
    teller = await router.set_state("t1", "ready", skills={"general": 1})
    assert teller["state"] == "offered" and teller["ticket_id"] == tid
    (offer,) = await offers_to(router, "t1")
    assert offer == {"type": "offer", "offer_id": teller["offer_id"], "ticket_id": tid, "service": "general",
                     "channel": "kiosk", "branch": "demo", "priority": "normal", "waited_s": 7.0,
                     "expires_at": T0 + 7 + 20}
    assert (await router.ticket(tid))["ticket"]["state"] == "offered"
    assert [e for e, _, _ in await log_events(router)] == ["enter", "offer"]


async def test_ready_teller_first_then_ticket_is_matched_on_arrival(router: Router) -> None:
    await router.set_state("t1", "ready", skills={"general": 1})
    tid = await enqueue(router)
    assert (await router.teller("t1"))["ticket_id"] == tid


async def test_teller_without_the_skill_gets_nothing(router: Router) -> None:
    await router.configure_queue(QueueSpec("loans", "loans"))
    await router.set_state("t1", "ready", skills={"general": 1})
    tid = await enqueue(router, service="loans")
    assert (await router.teller("t1"))["state"] == "ready"
    assert (await router.ticket(tid))["ticket"]["state"] == "waiting"


async def test_positions_and_estimated_wait_follow_staffing(router: Router) -> None:
    ids = [await enqueue(router, customer=f"device:k{i}") for i in range(3)]
    views = [(await router.ticket(t))["ticket"] for t in ids]
    assert [(v["position"], v["estimated_wait_s"]) for v in views] == [(1, 300), (2, 600), (3, 900)]
    await router.set_state("t1", "not_ready", "training", skills={"general": 1})
    await router.set_state("t2", "not_ready", "training", skills={"general": 1})
    assert (await router.ticket(ids[2]))["ticket"]["estimated_wait_s"] == 450  # two staffed tellers
    await router.set_state("t1", "ready")  # takes the first ticket
    assert [(await router.ticket(t))["ticket"]["position"] for t in ids] == [0, 1, 2]


async def test_changed_positions_are_pushed_to_customers_once(router: Router, clock: Clock) -> None:
    a = await enqueue(router, customer="device:ka")
    b = await enqueue(router, customer="device:kb")
    assert await router.push_positions() == 2
    await router.abandon(a, "device:ka")
    assert await router.push_positions() == 0  # coalesced: the queue was read less than 1 s ago
    clock.now += 1
    assert await router.push_positions() == 1
    clock.now += 1
    assert await router.push_positions() == 0  # nothing changed since
    updates = [e["ticket"] for _, e in await events.read(router.redis, "device:kb") if e["type"] == "ticket.update"]
    assert [(u["id"], u["position"]) for u in updates] == [(b, 2), (b, 1)]


@pytest.mark.parametrize(("strategy", "expected"), [
    ("longest_idle", "t_old"),       # ready longest
    ("fewest_calls", "t_fresh"),     # no calls today
    ("skill_level", "t_expert"),     # level 5
])
async def test_strategy_picks_the_right_teller(redis_client: redis.asyncio.Redis, clock: Clock,
                                               strategy: str, expected: str) -> None:
    r = Router(redis_client, clock=clock)
    await r.configure_queue(QueueSpec("warmup", "other", wrapup_s=0))
    await r.configure_queue(QueueSpec("q", "s", strategy, wrapup_s=0))
    # t_old and t_expert each took one call today (through another queue), t_fresh none.
    for teller in ("t_old", "t_expert"):
        await enqueue(r, service="warmup", customer=f"device:{teller}")
        view = await r.set_state(teller, "ready", skills={"other": 1})
        await r.accept(view["offer_id"], teller)
        await r.call_ended(teller)
        await r.set_state(teller, "not_ready", "lunch")
    await r.set_state("t_old", "ready", skills={"s": 1})
    clock.now += 10
    await r.set_state("t_fresh", "ready", skills={"s": 2})
    clock.now += 10
    await r.set_state("t_expert", "ready", skills={"s": 5})
    clock.now += 10
    tid = await enqueue(r, service="q")
    assert (await r.teller(expected))["ticket_id"] == tid
    others = {"t_old", "t_fresh", "t_expert"} - {expected}
    assert [(await r.teller(t))["state"] for t in sorted(others)] == ["ready", "ready"]


async def test_priority_goes_ahead_but_ages_so_nobody_starves(router: Router, clock: Clock) -> None:
    early = await enqueue(router, customer="device:a")                     # t=0
    clock.now += 100
    normal = await enqueue(router, customer="device:b")                    # t=100
    clock.now += 100
    vip = await enqueue(router, customer="device:c", priority="vip")       # t=200, boost 300 -> score -100
    elderly = await enqueue(router, customer="device:d", priority="elderly")  # t=200, boost 120 -> 80
    order = sorted([early, normal, vip, elderly], key=lambda t: 0)
    positions = {t: (await router.ticket(t))["ticket"]["position"] for t in order}
    assert positions == {vip: 1, early: 2, elderly: 3, normal: 4}
    # ageing: a VIP arriving more than 300 s after a normal ticket no longer passes it
    clock.now += 301
    late_vip = await enqueue(router, customer="device:e", priority="vip")
    assert (await router.ticket(late_vip))["ticket"]["position"] == 5
    served = []
    for i in range(5):
        view = await router.set_state(f"t{i}", "ready", skills={"general": 1})
        served.append(view["ticket_id"])
    assert served == [vip, early, elderly, normal, late_vip]


async def test_unknown_priority_and_queue_are_refused_and_change_nothing(router: Router) -> None:
    with pytest.raises(BadRequest):
        await enqueue(router, priority="king")
    with pytest.raises(NotFound):
        await enqueue(router, service="nope")
    assert await log_events(router) == []
    assert await router.redis.zcard("acd:q:general") == 0


async def test_ring_no_answer_requeues_at_the_old_place_and_teller_goes_not_ready(
        router: Router, clock: Clock) -> None:
    first = await enqueue(router, customer="device:a")
    clock.now += 1
    second = await enqueue(router, customer="device:b")
    offered = await router.set_state("t1", "ready", skills={"general": 1})
    assert offered["ticket_id"] == first
    clock.now += 5
    third = await enqueue(router, customer="device:c")
    clock.now += 14
    assert (await router.tick()).expired == 0  # offered at +1: the 20 s ring time is not over
    clock.now += 1
    result = await router.tick()
    assert result.expired == 1
    teller = await router.teller("t1")
    assert (teller["state"], teller["reason"], teller["today"]["missed"]) == ("not_ready", "ring_no_answer", 1)
    assert [(await router.ticket(t))["ticket"]["position"] for t in (first, second, third)] == [1, 2, 3]
    assert [e["type"] for e in await offers_to(router, "t1")] == ["offer", "offer.expired"]
    assert ("timeout", first, "t1") in await log_events(router)
    # the late accept is refused and changes nothing
    with pytest.raises(NotFound):
        await router.accept(offered["offer_id"], "t1")
    assert (await router.ticket(first))["ticket"]["state"] == "waiting"


async def test_accept_after_expiry_is_refused_even_before_the_timer_runs(router: Router, clock: Clock) -> None:
    tid = await enqueue(router)
    offer = (await router.set_state("t1", "ready", skills={"general": 1}))["offer_id"]
    clock.now += 21
    with pytest.raises(Conflict, match="expired"):
        await router.accept(offer, "t1")
    assert (await router.ticket(tid))["ticket"]["state"] == "offered"
    await router.tick()
    assert (await router.ticket(tid))["ticket"]["state"] == "waiting"


async def test_decline_puts_the_ticket_back_and_offers_it_to_the_next_teller(router: Router, clock: Clock) -> None:
    tid = await enqueue(router)
    offer = (await router.set_state("t1", "ready", skills={"general": 1}))["offer_id"]
    clock.now += 1
    await router.set_state("t2", "not_ready", "lunch", skills={"general": 1})
    await router.set_state("t2", "ready")
    # t2 is ready but the ticket is ringing at t1; a decline hands it to t2
    with pytest.raises(NotFound):
        await router.decline(offer, "t2")  # not t2's offer
    view = await router.decline(offer, "t1")
    assert (view["state"], view["reason"], view["today"]["declined"]) == ("not_ready", "declined", 1)
    assert (await router.teller("t2"))["ticket_id"] == tid


async def test_abandon_while_waiting_records_the_wait(router: Router, clock: Clock) -> None:
    tid = await enqueue(router, customer="device:a")
    clock.now += 42
    with pytest.raises(NotFound):
        await router.abandon(tid, "device:someone-else")
    ticket = await router.abandon(tid, "device:a")
    assert (ticket["state"], ticket["waited_s"]) == ("abandoned", 42.0)
    (ab,) = [e for e in await QueueLog(router.redis).recent(0) if e.event == "abandon"]
    assert ab.num("waited_s") == 42.0
    with pytest.raises(Conflict):
        await router.abandon(tid, "device:a")  # twice: nothing more changes
    assert await router.redis.zcard("acd:q:general") == 0


async def test_abandon_while_ringing_frees_the_teller(router: Router) -> None:
    tid = await enqueue(router, customer="device:a")
    offer = (await router.set_state("t1", "ready", skills={"general": 1}))["offer_id"]
    await router.abandon(tid, "device:a")
    assert (await router.teller("t1"))["state"] == "ready"
    assert (await offers_to(router, "t1"))[-1] == {"type": "offer.expired", "offer_id": offer, "ticket_id": tid,
                                                   "reason": "cancelled"}
    with pytest.raises(NotFound):
        await router.accept(offer, "t1")


async def test_callback_offered_above_the_threshold_and_queued_at_its_time(router: Router, clock: Clock) -> None:
    for i in range(2):  # two ahead: forecast 900 s > 600 s
        await enqueue(router, customer=f"device:k{i}")
    kiosk = await router.enqueue(service="general", customer="device:k9", channel="kiosk")
    assert "callback_offer" not in kiosk  # a kiosk customer is in the branch: no call-back
    phone = await router.enqueue(service="general", customer="phone:c1", channel="phone")
    assert phone["callback_offer"] == {"threshold_s": 600}
    kinds = [e["type"] for _, e in await events.read(router.redis, "phone:c1")]
    assert "ticket.callback_offer" in kinds
    with pytest.raises(NotFound):
        await router.book_callback(phone["id"], "phone:other", T0 + 3600)
    with pytest.raises(BadRequest):
        await router.book_callback(phone["id"], "phone:c1", T0 - 1)
    with pytest.raises(Conflict):
        await router.book_callback(kiosk["id"], "device:k9", T0 + 3600)  # no call-back offer
    booked = await router.book_callback(phone["id"], "phone:c1", T0 + 3600)
    assert (booked["state"], booked["callback_at"], booked["position"]) == ("callback", T0 + 3600, 0)
    assert (await router.ticket(kiosk["id"]))["ticket"]["position"] == 3
    clock.now = T0 + 3599
    assert (await router.tick()).called_back == 0
    late = await enqueue(router, customer="device:late")   # arrives before the call-back time
    clock.now = T0 + 3600
    assert (await router.tick()).called_back == 1
    ticket = (await router.ticket(phone["id"]))["ticket"]
    assert (ticket["state"], ticket["position"]) == ("waiting", 5)  # behind the ones who came before 3600
    assert (await router.ticket(late))["ticket"]["position"] == 4
    assert [e for e in await log_events(router) if e[0] == "callback"] == [("callback", phone["id"], None)]


async def test_cancelling_a_booked_callback(router: Router, clock: Clock) -> None:
    router.callback_threshold_s = 0
    phone = await router.enqueue(service="general", customer="phone:c1", channel="phone")
    await router.book_callback(phone["id"], "phone:c1", T0 + 60)
    assert (await router.abandon(phone["id"], "phone:c1"))["state"] == "abandoned"
    clock.now += 61
    assert (await router.tick()).called_back == 0
    assert "abandon" not in [e for e, _, _ in await log_events(router)]  # a cancelled call-back is not an abandon


async def test_wrapup_then_ready_again_unless_not_ready_was_asked(router: Router, clock: Clock) -> None:
    t1 = await enqueue(router, customer="device:a")
    view = await router.set_state("t1", "ready", skills={"general": 1})
    await router.accept(view["offer_id"], "t1")
    clock.now += 120
    with pytest.raises(Conflict):
        await router.set_state("t1", "ready")
    pending = await router.set_state("t1", "not_ready", "meeting")
    assert pending["pending"] and pending["state"] == "busy"
    ended = await router.call_ended("t1", t1)
    assert (ended["state"], ended["wrapup_until"], ended["today"]["handle_s"]) == ("wrap_up", clock.now + 30, 120.0)
    assert (await router.ticket(t1))["ticket"]["state"] == "done"
    clock.now += 30
    assert (await router.tick()).woke == 1
    assert ((await router.teller("t1"))["state"], (await router.teller("t1"))["reason"]) == ("not_ready", "meeting")
    # without a request, wrap-up ends in ready and the next ticket is offered at once
    await router.set_state("t1", "ready")
    t2 = await enqueue(router, customer="device:b")
    t3 = await enqueue(router, customer="device:c")
    await router.accept((await router.teller("t1"))["offer_id"], "t1")
    await router.call_ended("t1", t2)
    clock.now += 30
    await router.tick()
    teller = await router.teller("t1")
    assert (teller["state"], teller["ticket_id"], teller["today"]["calls"]) == ("offered", t3, 2)


async def test_wrapup_done_early_and_counts_reset_next_day(router: Router, clock: Clock) -> None:
    tid = await enqueue(router)
    await router.accept((await router.set_state("t1", "ready", skills={"general": 1}))["offer_id"], "t1")
    with pytest.raises(Conflict):
        await router.wrapup_done("t1")
    await router.complete(tid)
    assert (await router.wrapup_done("t1"))["state"] == "ready"
    assert (await router.teller("t1"))["today"]["calls"] == 1
    clock.now += 24 * 3600
    assert (await router.teller("t1"))["today"]["calls"] == 0


async def test_offered_teller_cannot_leave_without_answering(router: Router) -> None:
    await enqueue(router)
    await router.set_state("t1", "ready", skills={"general": 1})
    for state in ("not_ready", "offline", "ready"):
        with pytest.raises(Conflict):
            await router.set_state("t1", state)
    assert (await router.teller("t1"))["state"] == "offered"


async def test_transfer_to_a_queue_keeps_age_and_to_a_teller_waits_for_them(router: Router, clock: Clock) -> None:
    await router.configure_queue(QueueSpec("loans", "loans", wrapup_s=10))
    tid = await enqueue(router, customer="device:a")
    await router.accept((await router.set_state("t1", "ready", skills={"general": 1}))["offer_id"], "t1")
    clock.now += 60
    newer = await enqueue(router, service="loans", customer="device:b")
    with pytest.raises(NotFound):
        await router.transfer(tid, to_queue="nope")
    assert (await router.teller("t1"))["state"] == "busy"  # refused transfer changed nothing
    moved = await router.transfer(tid, to_queue="loans")
    assert (moved["service"], moved["position"]) == ("loans", 1)  # older than `newer`: ahead of it
    assert (await router.teller("t1"))["state"] == "wrap_up"
    assert (await router.ticket(newer))["ticket"]["position"] == 2
    view = await router.set_state("t2", "ready", skills={"loans": 1})
    assert view["ticket_id"] == tid
    await router.accept(view["offer_id"], "t2")
    # to a named teller: waits for them even though another teller with the skill is ready
    await router.set_state("t3", "not_ready", "away", skills={"loans": 1})
    await router.transfer(tid, to_teller="t3")
    await router.set_state("t4", "ready", skills={"loans": 1})
    assert (await router.teller("t4"))["ticket_id"] == newer
    assert (await router.set_state("t3", "ready"))["ticket_id"] == tid
    assert [e for e in await log_events(router) if e[0] == "transfer"] == [("transfer", tid, "t1"),
                                                                          ("transfer", tid, "t2")]


async def test_bad_strategy_and_skill_codes_are_refused(router: Router) -> None:
    with pytest.raises(BadRequest):
        await router.configure_queue(QueueSpec("x", "s", "random"))
    with pytest.raises(BadRequest):
        await router.set_state("t1", "ready", skills={"a,b=9": 1})
    with pytest.raises(BadRequest):
        await router.set_state("t1", "dancing")
    assert (await router.teller("t1"))["state"] == "offline"


async def test_timer_matches_what_a_dead_node_left_behind(router: Router) -> None:
    # a ticket written without matching (as if its node died in between): the timer picks it up
    await router.set_state("t1", "ready", skills={"general": 1})
    await router.redis.hset("acd:t:orphan", mapping={"id": "orphan", "queue": "general", "score": "1", "enq": "1",
                                                     "state": "waiting", "customer": "device:x", "channel": "kiosk",
                                                     "priority": "normal", "branch": "", "pq": ""})
    await router.redis.zadd("acd:q:general", {"orphan": 1})
    assert (await router.tick()).offers == 1
    assert (await router.teller("t1"))["ticket_id"] == "orphan"


async def test_storm_on_two_nodes_never_double_offers(router: Router, second_node: Router, clock: Clock) -> None:
    """Hundreds of tickets and tellers, ready/enqueue/accept/decline/end racing on two nodes."""
    rng = random.Random(7)
    nodes = [router, second_node]
    await router.configure_queue(QueueSpec("cards", "cards", "fewest_calls", wrapup_s=0))
    await router.configure_queue(QueueSpec("loans", "loans", "skill_level", wrapup_s=0))
    queues = ["general", "cards", "loans"]
    tellers = [f"t{i}" for i in range(200)]
    skills = {t: {q: rng.randint(1, 5) for q in rng.sample(queues, rng.randint(1, 3))} for t in tellers}
    tickets = 400
    gate = asyncio.Semaphore(40)  # bound the concurrency to what one node's Redis pool serves

    async def customer(i: int) -> None:
        await asyncio.sleep(rng.random() * 0.2)
        async with gate:
            await enqueue(rng.choice(nodes), customer=f"device:k{i}", service=rng.choice(queues),
                          priority=rng.choice(["normal", "normal", "elderly", "vip"]))

    async def teller(t: str) -> None:
        node = rng.choice(nodes)
        await asyncio.sleep(rng.random() * 0.2)
        async with gate:
            await node.set_state(t, "ready", skills=skills[t])
        for _ in range(6):  # bounded: a few calls each
            async with gate:
                await one_step(node, t)
            await asyncio.sleep(rng.random() * 0.05)

    async def one_step(node: Router, t: str) -> None:
        view = await node.teller(t)
        if view["state"] != "offered":
            return
        try:
            if rng.random() < 0.2:
                await node.decline(view["offer_id"], t)
                await node.set_state(t, "ready")
            else:
                await node.accept(view["offer_id"], t)
                await rng.choice(nodes).call_ended(t)  # wrap-up 0: ready again at once
        except (Conflict, NotFound):
            pass  # e.g. the customer left meanwhile

    async def leaver() -> None:
        for _ in range(30):
            await asyncio.sleep(0.01)
            waiting = await router.redis.zrange("acd:q:general", 0, 0)
            if waiting:
                owner = await router.redis.hget(f"acd:t:{waiting[0]}", "customer")
                try:
                    await second_node.abandon(waiting[0], owner)
                except (Conflict, NotFound):
                    pass

    await asyncio.wait_for(asyncio.gather(*(customer(i) for i in range(tickets)),
                                          *(teller(t) for t in tellers), leaver()), 120)
    # replay the queue log: at any moment a ticket has at most one live offer, a teller at most one
    live_ticket: dict[str, str] = {}
    live_teller: dict[str, str] = {}
    offers = 0
    for ev in await QueueLog(router.redis).recent(0):
        offer = str(ev.data.get("offer", ""))
        if ev.event == "offer":
            offers += 1
            assert ev.ticket_id not in live_ticket, f"ticket {ev.ticket_id} offered twice"
            assert ev.teller_id not in live_teller, f"teller {ev.teller_id} holds two offers"
            live_ticket[ev.ticket_id] = offer
            live_teller[str(ev.teller_id)] = offer
        elif ev.event in ("accept", "decline", "timeout", "abandon") and offer:
            assert live_ticket.pop(ev.ticket_id) == offer
            assert live_teller.pop(str(ev.teller_id)) == offer
    assert offers >= 300
    # and Redis agrees with itself: every offered teller's offer points back at it
    for t in tellers:
        view = await router.teller(t)
        if view["state"] == "offered":
            assert await router.redis.hget(f"acd:o:{view['offer_id']}", "teller") == t


async def test_a_ticket_whose_record_expired_is_dropped_not_offered(router: Router, clock: Clock) -> None:
    """A kiosk ticket nobody served for a day loses its hash (24 h TTL) but stays in the queue's zset:
    matching must skip and drop it, not fail half-way (which left the teller stuck as offered)."""
    stale = await enqueue(router, "device:k1")
    clock.now += 1
    fresh = await enqueue(router, "device:k2")
    await router.redis.delete(f"acd:t:{stale}")  # what the ticket's EXPIRE does after 24 h
    teller = await router.set_state("t1", "ready", skills={"general": 1})
    assert teller["state"] == "offered" and teller["ticket_id"] == fresh
    assert await router.redis.zscore("acd:q:general", stale) is None
    assert not await router.redis.exists(f"acd:t:{stale}")  # not recreated by a half-made offer
    await router.tick()  # the timer's match pass meets no stale head either


async def test_an_expired_ticket_transferred_to_a_teller_is_dropped_too(router: Router, clock: Clock) -> None:
    tid = await enqueue(router)
    await router.set_state("t1", "ready", skills={"general": 1})
    await router.accept((await router.teller("t1"))["offer_id"], "t1")
    await router.set_state("t2", "not_ready", skills={"general": 1})
    await router.transfer(tid, to_teller="t2")
    await router.redis.delete(f"acd:t:{tid}")
    teller = await router.set_state("t2", "ready")
    assert teller["state"] == "ready" and teller["ticket_id"] is None
    assert await router.redis.zcard("acd:pq:t2") == 0


async def test_wallboard_longest_wait_is_the_earliest_entry_not_the_head(router: Router, clock: Clock) -> None:
    first = await enqueue(router, "device:k1")
    clock.now += 100
    await enqueue(router, "device:k2", priority="vip")  # ahead of `first` in the queue
    for i in range(5):
        clock.now += 400
        await enqueue(router, f"device:n{i}")
    clock.now += 10
    snap = await router.snapshot()
    general = snap["queues"]["general"]
    assert general["waiting"] == 7
    assert general["longest_wait_s"] == round(clock.now - T0, 1)
    assert (await router.ticket(first))["ticket"]["position"] == 2
