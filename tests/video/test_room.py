"""Rooms: the 1:1 rule, rejoin (after a drop, or replacing a live connection) with the other
party's media going on without renegotiation, supervisors receiving both parties, offer checks.

Run inside `unshare -n` (see tests/video/test_signalling.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.config import Config
from cloudbank.platform.service import ENGINE
from cloudbank.video.app import create_app
from cloudbank.video.errors import BadSdp, RoomFull
from cloudbank.video.room import ROOMS, Room, check_offer
from cloudbank.video.testing_peers import Peer, join_token

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-a"


@pytest.fixture
async def node(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config.with_(video_node_id=NODE, video_drain_s=1.0), sinks=[]))


async def token(node: Client, party: str, sub: str | None = None) -> str:
    return await join_token(node.app[ENGINE], "s1", party, NODE, sub=sub)


@pytest.fixture
async def call(node: Client) -> AsyncIterator[tuple[Peer, Peer]]:
    customer, teller = Peer("customer", source=1), Peer("teller", source=2)
    await customer.join(str(node.make_url("/ws")), await token(node, "customer"))
    await teller.join(str(node.make_url("/ws")), await token(node, "teller"))
    yield customer, teller
    await customer.close()
    await teller.close()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def in_order(counters: list[int]) -> bool:
    return all(b > a for a, b in zip(counters, counters[1:], strict=False))


def test_offer_checks() -> None:
    with pytest.raises(BadSdp):
        check_offer("nonsense", "customer")
    with pytest.raises(BadSdp):
        check_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "teller")


async def test_one_customer_and_one_teller_per_room() -> None:
    room = Room("s1")
    room.admit("customer", "c1")
    room.members["customer"] = type("M", (), {"sub": "c1", "party": "customer"})()  # type: ignore[assignment]
    room.admit("customer", "c1")  # the same client may rejoin
    with pytest.raises(RoomFull):
        room.admit("customer", "c2")
    room.admit("teller", "t1")
    for i in range(3):
        room.members[f"supervisor:s{i}"] = type("M", (), {"sub": f"s{i}", "party": "supervisor"})()  # type: ignore[assignment]
    with pytest.raises(RoomFull):
        room.admit("supervisor", "s9")
    room.members.clear()
    await room.close()
    with pytest.raises(RoomFull):
        room.admit("teller", "t1")


@pytest.mark.slow
async def test_a_rejoin_after_a_dropped_connection_resumes_the_call(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await until(lambda: len(teller.received.counters(1)) >= 10)
    await customer.drop()
    await until(lambda: any(m.get("type") == "peer.left" for m in teller.messages))
    # the customer's kiosk comes back with a new peer connection (and new camera frames: source 3)
    back = Peer("customer", source=3)
    await back.join(str(node.make_url("/ws")), await token(node, "customer"))
    try:
        assert back.messages[0]["peers"] == ["teller"]
        await until(lambda: len(teller.received.counters(3)) >= 20 and len(back.received.counters(2)) >= 20)
        await until(lambda: back.received.frames["audio"] >= 20)
        assert any(m.get("type") == "peer.joined" and m["party"] == "customer" for m in teller.messages)
        # no renegotiation: the teller still has its first two tracks, the frames came on them
        assert teller.received.tracks == 2
        assert in_order(teller.received.counters(3)) and teller.received.unreadable == 0
        assert node.app[ROOMS].peer_connections() == 2
    finally:
        await back.close()


@pytest.mark.slow
async def test_a_rejoin_replaces_the_live_connection(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await until(lambda: len(teller.received.counters(1)) >= 10)
    again = Peer("customer", source=3)
    await again.join(str(node.make_url("/ws")), await token(node, "customer"))
    try:
        await until(lambda: any(e["code"] == "replaced" for e in customer.errors()))
        await until(lambda: len(teller.received.counters(3)) >= 20 and len(again.received.counters(2)) >= 10)
        assert teller.received.tracks == 2 and teller.received.unreadable == 0
        assert not any(m.get("type") == "peer.left" for m in teller.messages)
        assert node.app[ROOMS].peer_connections() == 2
    finally:
        await again.close()


@pytest.mark.slow
async def test_a_supervisor_receives_both_parties(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    supervisor = Peer("supervisor")
    await supervisor.join(str(node.make_url("/ws")), await token(node, "supervisor", sub="sup-1"))
    try:
        await until(lambda: len(supervisor.received.counters(1)) >= 10 and len(supervisor.received.counters(2)) >= 10)
        assert in_order(supervisor.received.counters(1)) and in_order(supervisor.received.counters(2))
        assert supervisor.received.frames["audio"] > 0
        assert sorted(supervisor.messages[0]["peers"]) == ["customer", "teller"]
        # the supervisor is not seen by the customer's or the teller's peer connection
        assert customer.received.tracks == 2 and teller.received.tracks == 2
    finally:
        await supervisor.close()


@pytest.mark.slow
async def test_each_room_gets_the_recorder_and_snapshots(aiohttp_client: MakeClient, config: Config) -> None:
    """The default sinks (ASR off here: test_transcript covers it) see the forwarded packets."""
    node = await aiohttp_client(create_app(config.with_(video_node_id=NODE, asr_pool_size=0, video_drain_s=1.0)))
    customer, teller = Peer("customer", source=1), Peer("teller", source=2)
    await customer.join(str(node.make_url("/ws")), await token(node, "customer"))
    await teller.join(str(node.make_url("/ws")), await token(node, "teller"))
    try:
        await until(lambda: len(teller.received.counters(1)) >= 15)
        assert teller.ws is not None
        await teller.ws.send_json({"type": "snapshot"})
        await until(lambda: any(m.get("type") == "snapshot" for m in teller.messages))
        shot = next(m for m in teller.messages if m.get("type") == "snapshot")
        assert shot["url"].startswith("/video/snapshots/s1/") and shot["faces"] == []
        path = shot["url"].removeprefix("/video")
        teller_token = await token(node, "teller")
        resp = await node.get(f"{path}?token={teller_token}")
        assert resp.status == 200 and (await resp.read())[:2] == b"\xff\xd8"  # a JPEG
        for tok, status in ((await token(node, "customer"), 403), ("", 401),
                            (await join_token(node.app[ENGINE], "s2", "teller", NODE), 403)):
            assert (await node.get(f"{path}?token={tok}")).status == status
        for bad in ("/snapshots/s1/..%2F..%2Fcloudbank.sqlite3", "/snapshots/s1/customer-9999.jpg",
                    "/snapshots/..%2Fx/customer-0001.jpg"):
            assert (await node.get(f"{bad}?token={teller_token}")).status in (403, 404), bad
    finally:
        await customer.close()
        await teller.close()
    manifest = config.data / "recordings" / "s1" / "manifest.json"
    await until(lambda: manifest.exists())
    tracks = json.loads(manifest.read_text())["tracks"]
    assert {(t["party"], t["kind"]) for t in tracks} == {(p, k) for p in ("customer", "teller")
                                                        for k in ("audio", "video")}
