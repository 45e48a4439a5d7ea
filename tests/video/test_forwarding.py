"""RTP forwarding on aiortc internals: every hook exists (fails loudly on an aiortc upgrade), the
sequence/timestamp rewriting, and real peers through a real node (frames intact and in order,
NACKs answered from the sender's history, PLI forwarded upstream, nothing decoded on the node).

Run inside `unshare -n` (see tests/video/test_signalling.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiortc
import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCPeerConnection
from aiortc.rtp import RTCP_PSFB_PLI, RTCP_RTPFB_NACK, RtcpPsfbPacket, RtcpRtpfbPacket
from cloudbank.platform.config import Config
from cloudbank.platform.service import ENGINE
from cloudbank.video.app import create_app
from cloudbank.video.errors import AiortcIncompatible
from cloudbank.video.forwarding import (
    AIORTC_VERSION,
    HoldTrack,
    ReceiveTap,
    SendPort,
    StreamRewriter,
    add_forwarding_transceiver,
    check_receiver,
    check_sender,
    codec_preferences,
)
from cloudbank.video.room import ROOMS
from cloudbank.video.testing_peers import Peer, join_token

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-a"


# --- the hooks ---------------------------------------------------------------------------------

def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__ == AIORTC_VERSION, "forwarding.py uses aiortc internals: re-check every hook"


async def test_every_hook_exists_on_real_senders_and_receivers() -> None:
    pc = RTCPeerConnection()
    try:
        t = add_forwarding_transceiver(pc, "video", "sendrecv")
        check_sender(t.sender)
        check_receiver(t.receiver)
        # The wrappers install on the instance and aiortc's own code reaches them through it.
        port = SendPort(t.sender, on_keyframe_request=lambda: None)
        tap = ReceiveTap(t.receiver, on_packet=lambda p, c: asyncio.sleep(0))
        assert t.sender.send == port._send and t.sender._send_keyframe == port._keyframe_requested
        assert t.receiver._handle_rtp_packet == tap._handle
    finally:
        await pc.close()


async def test_a_missing_hook_fails_loudly() -> None:
    class Bare:
        pass

    with pytest.raises(AiortcIncompatible, match="_RTCRtpSender__rtp_history"):
        check_sender(Bare())  # type: ignore[arg-type]
    with pytest.raises(AiortcIncompatible, match="_handle_rtp_packet"):
        check_receiver(Bare())  # type: ignore[arg-type]


def test_codec_preferences_pin_one_codec_per_kind() -> None:
    video = codec_preferences("video")
    assert [c.mimeType for c in video] == ["video/VP8", "video/rtx"]
    assert [c.mimeType for c in codec_preferences("audio")] == ["audio/opus"]
    with pytest.raises(ValueError):
        codec_preferences("video", "video/AV1")


async def test_hold_track_never_yields() -> None:
    track = HoldTrack("video")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.05)


# --- rewriting ---------------------------------------------------------------------------------

def test_rewriter_maps_to_a_continuous_stream_across_a_new_source() -> None:
    r = StreamRewriter(90000, seq_start=100, ts_start=1000)
    assert r.rewrite(0xAAAA, 65534, 4_294_967_000, now=0.0) == (100, 1000)
    assert r.rewrite(0xAAAA, 65535, 4_294_967_000, now=0.0) == (101, 1000)
    # wraparound of the source's sequence number and timestamp
    assert r.rewrite(0xAAAA, 0, 4_294_967_000 + 3000 - 2**32, now=0.033) == (102, 4000)
    # a late retransmission keeps its own number
    assert r.rewrite(0xAAAA, 65535, 4_294_967_000, now=0.04) == (101, 1000)
    # the party rejoined: a new SSRC, random seq/ts; output continues 1 s of clock later
    seq, ts = r.rewrite(0xBBBB, 5000, 777, now=1.033)
    assert seq == 103 and ts == 4000 + 90000
    assert r.rewrite(0xBBBB, 5001, 777 + 6000, now=1.1) == (104, 4000 + 90000 + 6000)


# --- through a real node -----------------------------------------------------------------------

@pytest.fixture
async def node(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config.with_(video_node_id=NODE), sinks=[]))


@pytest.fixture
async def call(node: Client) -> AsyncIterator[tuple[Peer, Peer]]:
    url = str(node.make_url("/ws"))
    customer, teller = Peer("customer", source=1), Peer("teller", source=2)
    await customer.join(url, await join_token(node.app[ENGINE], "s1", "customer", NODE))
    await teller.join(url, await join_token(node.app[ENGINE], "s1", "teller", NODE))
    yield customer, teller
    await customer.close()
    await teller.close()


async def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


def assert_intact_and_in_order(peer: Peer, source: int, at_least: int) -> None:
    counters = peer.received.counters(source)
    assert len(counters) >= at_least, f"{peer.party} saw {len(counters)} frames from {source}"
    assert all(b > a for a, b in zip(counters, counters[1:], strict=False)), "frames out of order"
    assert peer.received.unreadable == 0, "a frame arrived damaged"
    assert {s for s, _, _ in peer.received.stamps} == {source}


@pytest.mark.slow
async def test_two_peers_see_and_hear_each_other_through_the_node(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await wait_for(lambda: len(customer.received.counters(2)) >= 30 and len(teller.received.counters(1)) >= 30)
    await wait_for(lambda: customer.received.frames["audio"] >= 50 and teller.received.frames["audio"] >= 50)
    assert_intact_and_in_order(customer, source=2, at_least=30)
    assert_intact_and_in_order(teller, source=1, at_least=30)

    room = node.app[ROOMS].get("s1")
    assert room is not None
    for member in room.members.values():
        for port in member.ports.values():
            assert port.forwarded > 0
            # what aiortc's RTCP sender reports will say matches what was forwarded
            assert port.sender._RTCRtpSender__packet_count == port.forwarded
        for tap in member.taps.values():
            # nothing is decoded on the node: the receivers' tracks never got a frame
            assert tap.receiver.track._queue.qsize() == 0


@pytest.mark.slow
async def test_nack_is_answered_from_the_senders_history(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await wait_for(lambda: len(teller.received.counters(1)) >= 5)
    room = node.app[ROOMS].get("s1")
    assert room is not None
    port = room.members["teller"].ports[("customer", "video")]
    sender = port.sender
    history = sender._RTCRtpSender__rtp_history
    packet = max(history.values(), key=lambda p: p.sequence_number)
    assert packet.ssrc == sender._ssrc and packet.payload_type == port.codec.payloadType
    before = sender.transport._RTCDtlsTransport__tx_packets
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc)
    nack.lost = [packet.sequence_number]
    await sender._handle_rtcp_packet(nack)
    assert sender.transport._RTCDtlsTransport__tx_packets > before


@pytest.mark.slow
async def test_pli_from_a_viewer_reaches_the_source(node: Client, call: tuple[Peer, Peer]) -> None:
    customer, teller = call
    await wait_for(lambda: len(teller.received.counters(1)) >= 5)
    assert customer.pc is not None
    client_sender = next(s for s in customer.pc.getSenders() if s.kind == "video")
    asked: list[bool] = []
    original = client_sender._send_keyframe

    def spy() -> None:
        asked.append(True)
        original()

    client_sender._send_keyframe = spy
    room = node.app[ROOMS].get("s1")
    assert room is not None
    node_sender = room.members["teller"].ports[("customer", "video")].sender
    await asyncio.sleep(0.4)  # the PLI rate limit
    await node_sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=node_sender._ssrc))
    await wait_for(lambda: bool(asked), timeout=5)
