"""The routing scripts write the offer and accept events themselves (one round trip per decision):
the events must be the ones the Python side would have written, in the clients' streams as
`events.publish` writes them, and nothing when the router does not publish."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from cloudbank.platform import events
from cloudbank.platform.routing import QueueSpec, Router

T0 = 1_780_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def make_router(redis_client: redis.asyncio.Redis, clock: Clock, publish: bool = True) -> Router:
    r = Router(redis_client, clock=clock, callback_threshold_s=600, publish=publish)
    await r.configure_queue(QueueSpec("general", "general", "longest_idle", ring_timeout_s=20, wrapup_s=30,
                                      expected_handle_s=300))
    return r


async def stream(r: Router, client: str) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(r.redis, client)]


async def test_offer_events_land_in_both_streams_with_the_stream_ttl(redis_client: redis.asyncio.Redis) -> None:
    clock = Clock()
    r = await make_router(redis_client, clock)
    branch = 'Zürich "Nord"/1'  # quotes, a slash and non-ASCII survive the script's JSON
    tid = (await r.enqueue(service="general", customer="device:kü", channel="kiosk", priority="vip",
                           branch=branch))["id"]
    clock.now += 2.5
    teller = await r.set_state("t1", "ready", skills={"general": 2})
    assert await stream(r, "user:t1") == [{
        "type": "offer", "offer_id": teller["offer_id"], "ticket_id": tid, "service": "general",
        "channel": "kiosk", "branch": branch, "priority": "vip", "waited_s": 2.5, "expires_at": T0 + 2.5 + 20}]
    assert (await stream(r, "device:kü"))[-1] == {"type": "ticket.update", "ticket": {
        "id": tid, "service": "general", "state": "offered", "position": 0, "estimated_wait_s": 0,
        "channel": "kiosk", "priority": "vip", "waited_s": 2.5}}
    for client in ("user:t1", "device:kü"):
        assert 0 < await redis_client.ttl(events.stream_key(client)) <= events.STREAM_TTL_S
        (_, fields), = (await redis_client.xrange(events.stream_key(client), count=1))
        assert set(fields) == {"e"}


async def test_accepted_customer_gets_the_same_connected_view_as_the_api(redis_client: redis.asyncio.Redis) -> None:
    clock = Clock()
    r = await make_router(redis_client, clock)
    for i in range(2):  # two ahead: the phone customer is offered a call-back, then served anyway
        await r.enqueue(service="general", customer=f"device:k{i}", channel="kiosk")
    phone = await r.enqueue(service="general", customer="phone:c1", channel="phone")
    assert phone["callback_offer"] == {"threshold_s": 600}
    for i in range(3):
        teller = await r.set_state(f"t{i}", "ready", skills={"general": 1})
    clock.now += 10
    accepted = await r.accept(teller["offer_id"], "t2")
    last = (await stream(r, "phone:c1"))[-1]
    assert last == {"type": "ticket.update", "ticket": accepted["ticket"]}
    assert last["ticket"]["state"] == "connected" and last["ticket"]["waited_s"] is None
    assert last["ticket"]["callback_offer"] == {"threshold_s": 600}


async def test_a_router_that_does_not_publish_writes_no_event(redis_client: redis.asyncio.Redis) -> None:
    r = await make_router(redis_client, Clock(), publish=False)
    await r.enqueue(service="general", customer="device:k1", channel="kiosk")
    offer = (await r.set_state("t1", "ready", skills={"general": 1}))["offer_id"]
    await r.accept(offer, "t1")
    assert [k async for k in redis_client.scan_iter("events:*")] == []


async def test_refused_accept_writes_no_event(redis_client: redis.asyncio.Redis) -> None:
    r = await make_router(redis_client, Clock())
    await r.enqueue(service="general", customer="device:k1", channel="kiosk")
    offer = (await r.set_state("t1", "ready", skills={"general": 1}))["offer_id"]
    before = await stream(r, "device:k1")
    for offer_id, teller in ((offer, "t2"), ("nope", "t1"), ("x" * 1_000_000, "t1")):
        try:
            await r.accept(offer_id, teller)
        except Exception as exc:  # noqa: BLE001 - which refusal is test_routing's business
            assert getattr(exc, "status", None) == 404
        else:
            raise AssertionError("accepted someone else's or an unknown offer")
    assert await stream(r, "device:k1") == before


async def test_scripts_are_loaded_again_after_redis_forgot_them(redis_client: redis.asyncio.Redis) -> None:
    r = await make_router(redis_client, Clock())
    await r.enqueue(service="general", customer="device:k1", channel="kiosk")
    await redis_client.script_flush()  # as after a restart of Redis
    assert (await r.set_state("t1", "ready", skills={"general": 1}))["state"] == "offered"
    assert (await r.enqueue(service="general", customer="device:k2", channel="kiosk"))["position"] == 1
