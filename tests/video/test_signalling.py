"""`GET /video/ws`: join tokens, messages, hostile input, timeouts, floods. Each refusal is a clear
4xx or an error message; afterwards no peer connection or task is left behind and a call already
in the room goes on.

Run inside a network namespace with only loopback:
    unshare -n sh -c 'ip link set lo up; pytest tests/video/test_signalling.py'
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy

from cloudbank.platform.config import Config
from cloudbank.platform.events import ended_key
from cloudbank.platform.service import ENGINE, KEYS, REDIS
from cloudbank.video.app import create_app
from cloudbank.video.ice import restrict_ice
from cloudbank.video.room import ROOMS
from cloudbank.video.testing_peers import LOOPBACK, Peer, join_token

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-a"


@pytest.fixture
async def node(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config.with_(video_node_id=NODE, video_ice_timeout_s=2.0, video_drain_s=1.0),
                                          sinks=[]))


async def token(node: Client, party: str = "customer", session: str = "s1", **kw: Any) -> str:
    return await join_token(node.app[ENGINE], session, party, kw.pop("node", NODE), **kw)


async def settled(node: Client, tasks: int, timeout: float = 8.0) -> None:
    """No room, no peer connection, and no more tasks than before."""
    for _ in range(int(timeout / 0.05)):
        if not node.app[ROOMS].rooms and len(asyncio.all_tasks()) <= tasks:
            return
        await asyncio.sleep(0.05)
    assert node.app[ROOMS].rooms == {}
    assert node.app[ROOMS].peer_connections() == 0
    left = [t.get_coro() for t in asyncio.all_tasks()]
    assert len(asyncio.all_tasks()) <= tasks, left


async def open_ws(node: Client, tok: str) -> aiohttp.ClientWebSocketResponse:
    ws = await node.ws_connect(f"/ws?token={tok}")
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined"
    return ws


async def next_error(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] == "error":
            return data


async def offer_sdp(party: str = "customer") -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    direction = "recvonly" if party == "supervisor" else "sendrecv"
    for _ in range(2 if party == "supervisor" else 1):
        pc.addTransceiver("audio", direction=direction)
        pc.addTransceiver("video", direction=direction)
    restrict_ice(pc, ["127.0.0.1"], LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


# --- refused before the socket opens -----------------------------------------------------------

async def test_join_tokens_are_checked_before_the_socket_opens(node: Client) -> None:
    keys = node.app[KEYS]
    cases = {
        "": 401,
        "garbage": 401,
        keys.issue("c1", "join", "session:s1", -5, party="customer", node=NODE): 401,  # expired
        keys.issue("u1", "teller", "api", 300): 403,  # a login token, not a join token
        keys.issue("c1", "join", "api", 300, party="customer", node=NODE): 403,  # not a session scope
        keys.issue("c1", "join", "session:s1", 300, party="admin", node=NODE): 403,
        keys.issue("c1", "join", "session:s1", 300, node=NODE): 403,  # no party
        keys.issue("c1", "join", "session:s1", 300, party="customer", node="node-b"): 403,
        keys.issue("c1", "join", "session:s1", 300, party="customer"): 403,  # no node
        keys.issue("c1", "join", "session:" + "x" * 200, 300, party="customer", node=NODE): 403,
    }
    for tok, status in cases.items():
        resp = await node.get(f"/ws?token={tok}", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                           "Sec-WebSocket-Version": "13",
                                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert resp.status == status, (tok[:20], await resp.text())
        body = await resp.json()
        assert body["error"] in ("unauthorized", "forbidden") and body["message"]
    assert node.app[ROOMS].rooms == {}


async def test_a_call_that_ended_admits_nobody_with_a_still_valid_token(node: Client) -> None:
    """Join tokens outlive the call; the platform marks the session ended and the node refuses it."""
    tok = await token(node, session="s-ended")
    await node.app[REDIS].set(ended_key("s-ended"), "1")
    resp = await node.get(f"/ws?token={tok}", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                       "Sec-WebSocket-Version": "13",
                                                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 409 and (await resp.json())["code"] == "call_ended"
    assert node.app[ROOMS].rooms == {}


# --- messages ----------------------------------------------------------------------------------

async def test_bad_messages_get_errors_and_change_nothing(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    ws = await open_ws(node, await token(node))
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({"no": "type"}),
        json.dumps({"type": "dance"}),
        json.dumps({"type": "offer"}),
        json.dumps({"type": "offer", "sdp": 5}),
        json.dumps({"type": "offer", "sdp": "v=0", "extra": 1}),
        json.dumps({"type": "offer", "sdp": "x" * 61_000}),
        json.dumps({"type": "candidate", "candidate": {"candidate": "garbage"}}),
        json.dumps({"type": "candidate", "candidate": {"candidate": "a", "bogus": 1}}),
        json.dumps({"type": "candidate", "candidate": {"candidate": 7}}),
        json.dumps({"type": "leave", "now": True}),
    ]
    for text in bad:
        await ws.send_str(text)
        err = await next_error(ws)
        assert err["code"] == "bad_message" and err["message"], text[:40]
    await ws.send_json({"type": "snapshot"})  # a customer may not (access.SIGNALLING_MESSAGES)
    assert (await next_error(ws))["code"] == "not_allowed"
    await ws.send_bytes(b"\x00\x01")
    assert (await next_error(ws))["code"] == "bad_message"
    assert node.app[ROOMS].peer_connections() == 0
    await ws.send_json({"type": "leave"})
    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()
    await settled(node, baseline)


async def test_garbage_and_hostile_sdp_is_refused(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    pc, good = await offer_sdp()
    await pc.close()
    audio_only = good.split("m=video")[0]
    many_video = good + good[good.index("m=video"):] * 3
    hostile = [
        "v=0",
        "\x01\x02\xff" * 100,
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        audio_only,
        many_video,
        good.replace("a=fingerprint", "a=fingerprinx"),
        good.replace("a=ice-ufrag", "a=ice-ufraq"),
        good.replace("VP8/90000", "XYZ/90000").replace("opus/48000", "abc/48000"),
        good.replace("a=sendrecv", "a=recvonly"),  # a customer must send
        good.replace("a=end-of-candidates", "".join(
            f"a=candidate:{i} 1 udp 2122260223 10.0.{i // 250}.{i % 250} 9 typ host\r\n" for i in range(100))
            + "a=end-of-candidates", 1),
    ]
    ws = await open_ws(node, await token(node))
    for sdp in hostile:
        await ws.send_json({"type": "offer", "sdp": sdp})
        err = await next_error(ws)
        assert err["code"] == "bad_sdp", (sdp[:60], err)
        assert node.app[ROOMS].peer_connections() == 0
    await ws.close()
    await settled(node, baseline)


async def test_an_oversized_message_closes_the_socket_and_frees_everything(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    ws = await open_ws(node, await token(node))
    await ws.send_str(json.dumps({"type": "offer", "sdp": "x" * (1024 * 1024)}))
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await ws.close()
    await settled(node, baseline)


async def test_a_flood_is_cut_off(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    ws = await open_ws(node, await token(node))
    for _ in range(300):
        if ws.closed:
            break
        await ws.send_json({"type": "candidate", "candidate": None})
    codes = []
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        codes.append(json.loads(msg.data).get("code"))
    assert codes[-1] == "too_many_messages"
    await ws.close()
    await settled(node, baseline)


async def test_a_client_that_never_offers_times_out(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    ws = await open_ws(node, await token(node))
    assert (await next_error(ws))["code"] == "ice_timeout"
    await ws.close()
    await settled(node, baseline)


async def test_a_client_that_never_completes_ice_times_out(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    ws = await open_ws(node, await token(node))
    pc, sdp = await offer_sdp()
    await pc.close()  # it will never answer the node's connectivity checks
    await ws.send_json({"type": "offer", "sdp": sdp})
    answer = await ws.receive_json(timeout=5)
    assert answer["type"] == "answer" and "a=candidate" in answer["sdp"]
    assert node.app[ROOMS].peer_connections() == 1
    # a second offer on the same socket is refused; the first one stands
    await ws.send_json({"type": "offer", "sdp": sdp})
    assert (await next_error(ws))["code"] == "bad_message"
    assert (await next_error(ws))["code"] == "ice_timeout"
    await ws.close()
    await settled(node, baseline)


async def test_answer_gathers_only_on_loopback_and_ignores_outside_candidates(node: Client) -> None:
    ws = await open_ws(node, await token(node))
    pc, sdp = await offer_sdp()
    outside = "a=candidate:1 1 udp 2122260223 10.1.2.3 9999 typ host\r\n" \
              "a=candidate:2 1 udp 2122260223 abcd.local 9999 typ host\r\n"
    sdp = sdp.replace("a=end-of-candidates", outside + "a=end-of-candidates", 1)
    await ws.send_json({"type": "offer", "sdp": sdp})
    answer = (await ws.receive_json(timeout=5))["sdp"]
    hosts = {line.split()[4] for line in answer.split("\r\n") if line.startswith("a=candidate")}
    assert hosts == {"127.0.0.1"}
    await ws.send_json({"type": "candidate", "candidate": {
        "candidate": "candidate:3 1 udp 2122260223 192.168.7.7 5000 typ host", "sdpMid": "0",
        "sdpMLineIndex": 0}})
    room = node.app[ROOMS].get("s1")
    assert room is not None
    member = room.members["customer"]
    conn = member.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
    await asyncio.sleep(0.1)
    remote = {c.host for c in conn.remote_candidates}
    assert remote and remote <= {"127.0.0.1"}
    await pc.close()
    await ws.close()


# --- with a call going on ----------------------------------------------------------------------

@pytest.fixture
async def call(node: Client) -> AsyncIterator[tuple[Peer, Peer]]:
    url = str(node.make_url("/ws"))
    customer, teller = Peer("customer", source=1), Peer("teller", source=2)
    await customer.join(url, await token(node, "customer"))
    await teller.join(url, await token(node, "teller"))
    yield customer, teller
    await customer.close()
    await teller.close()


async def frames_keep_coming(peer: Peer, source: int, more: int = 10) -> None:
    start = len(peer.received.counters(source))
    for _ in range(200):
        if len(peer.received.counters(source)) >= start + more:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{peer.party} stopped receiving from {source}")


@pytest.mark.slow
async def test_intruders_are_refused_and_the_call_goes_on(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await frames_keep_coming(customer, 2)
    pcs = node.app[ROOMS].peer_connections()
    # a second customer (another client) and a token for another session's node
    for tok, status in ((await token(node, "customer", sub="someone-else"), 409),
                        (await token(node, "teller", sub="other-teller"), 409)):
        async with node.get(f"/ws?token={tok}", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
            assert r.status == status
            assert (await r.json())["code"] == "room_full"
    # a supervisor's socket sends garbage and floods; then a silent client times out
    ws = await open_ws(node, await token(node, "supervisor", sub="sup-1"))
    await ws.send_json({"type": "offer", "sdp": "v=0"})
    assert (await next_error(ws))["code"] == "bad_sdp"
    await ws.close()
    assert node.app[ROOMS].peer_connections() == pcs
    await frames_keep_coming(customer, 2)
    await frames_keep_coming(teller, 1)
    assert customer.errors() == [] and teller.errors() == []


async def test_a_failed_party_does_not_end_the_room_under_one_still_joining(node: Client) -> None:
    baseline = len(asyncio.all_tasks())
    waiting = await open_ws(node, await token(node, "customer"))  # connected, has not offered yet
    teller = await open_ws(node, await token(node, "teller"))
    await teller.send_json({"type": "offer", "sdp": "v=0"})
    assert (await next_error(teller))["code"] == "bad_sdp"
    await teller.close()
    await asyncio.sleep(0.2)
    room = node.app[ROOMS].get("s1")
    assert room is not None and not room.closed
    pc, sdp = await offer_sdp()
    await waiting.send_json({"type": "offer", "sdp": sdp})
    assert (await waiting.receive_json(timeout=5))["type"] == "answer"
    await pc.close()
    await waiting.close()
    await settled(node, baseline)


async def test_a_rejoin_while_the_last_room_is_still_closing_opens_a_new_room(aiohttp_client: MakeClient,
                                                                             config: Config) -> None:
    """Closing a room flushes its recording (slow); a party joining meanwhile gets a fresh room, not
    409 "the call has ended" from the one on its way out."""
    released = asyncio.Event()
    closing = asyncio.Event()

    class SlowSink:  # injects the fault: a sink that takes its time to close
        def on_rtp(self, track: Any, packet: Any) -> None:
            pass

        async def close(self) -> None:
            closing.set()
            await released.wait()

    node = await aiohttp_client(create_app(config.with_(video_node_id=NODE, video_ice_timeout_s=2.0,
                                                        video_drain_s=1.0),
                                           sinks=[lambda session_id, keyframe: SlowSink()]))
    first = await open_ws(node, await token(node, "customer"))
    old = node.app[ROOMS].get("s1")
    await first.close()
    await asyncio.wait_for(closing.wait(), 5)
    assert old is not None and old.closed
    again = await open_ws(node, await token(node, "customer"))
    room = node.app[ROOMS].get("s1")
    assert room is not None and room is not old and not room.closed
    released.set()
    await again.close()
