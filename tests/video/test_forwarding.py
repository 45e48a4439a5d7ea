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
    keyframe_start,
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


def test_keyframe_start_on_real_vp8_packets() -> None:
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from cloudbank.video.testing_peers import stamped_frame

    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96))
    key, _ = encoder.encode(stamped_frame(1, 0), force_keyframe=True)
    delta, _ = encoder.encode(stamped_frame(1, 1), force_keyframe=False)
    assert keyframe_start("video/VP8", key[0])
    assert not any(keyframe_start("video/VP8", p) for p in key[1:])
    assert not any(keyframe_start("video/VP8", p) for p in delta)
    assert not keyframe_start("video/VP8", b"")
    assert keyframe_start("video/H264", bytes([0x65, 0x88]))  # IDR slice
    assert not keyframe_start("video/H264", bytes([0x41, 0x9A]))  # non-IDR slice
    assert keyframe_start("video/H264", bytes([0x7C, 0x85]))  # FU-A start of an IDR
    assert keyframe_start("audio/opus", b"\x01")


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


# --- a browser through the node ----------------------------------------------------------------

BROWSER_PAGE = """<!doctype html><meta charset="utf-8"><title>customer</title>
<video id="remote" autoplay playsinline muted></video>
<script type="module">
const params = new URLSearchParams(location.search);
window.state = {joined: null, errors: [], frames: 0, connection: "new"};
const pc = new RTCPeerConnection({iceServers: []});
const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 640, height: 480}});
for (const track of stream.getTracks()) pc.addTrack(track, stream);
const video = document.getElementById("remote");
pc.ontrack = (e) => { if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]); };
const count = () => { window.state.frames++; video.requestVideoFrameCallback(count); };
video.requestVideoFrameCallback(count);
pc.onconnectionstatechange = () => { window.state.connection = pc.connectionState; };
const ws = new WebSocket(params.get("ws"));
pc.onicecandidate = (e) => {
  if (e.candidate) ws.send(JSON.stringify({type: "candidate", candidate: e.candidate.toJSON()}));
};
ws.onmessage = async (event) => {
  const msg = JSON.parse(event.data);
  if (msg.type === "joined") {
    window.state.joined = msg;
    await pc.setLocalDescription(await pc.createOffer());
    ws.send(JSON.stringify({type: "offer", sdp: pc.localDescription.sdp}));
  } else if (msg.type === "answer") {
    await pc.setRemoteDescription({type: "answer", sdp: msg.sdp});
  } else if (msg.type === "error") {
    window.state.errors.push(msg);
  }
};
window.videoSize = () => [video.videoWidth, video.videoHeight];
</script>"""


@pytest.mark.slow
async def test_a_browser_and_a_python_peer_decode_each_others_video(
        aiohttp_client: MakeClient, config: Config) -> None:
    from aiohttp import web
    from playwright.async_api import async_playwright

    root = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=BROWSER_PAGE, content_type="text/html")

    root.router.add_get("/customer.html", page)
    video = create_app(config.with_(video_node_id=NODE), sinks=[])
    root.add_subapp("/video/", video)
    server = await aiohttp_client(root)
    ws_url = str(server.make_url("/video/ws")).replace("http://", "ws://")
    customer_token = await join_token(video[ENGINE], "s1", "customer", NODE)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--allow-loopback-in-peer-connection", "--disable-background-networking"])
        try:
            tab = await browser.new_page()
            await tab.goto(f"{server.make_url('/customer.html')}?ws={ws_url}?token={customer_token}")
            await tab.wait_for_function("window.state && window.state.joined !== null", timeout=15000)
            teller = Peer("teller", source=2, read_stamps=False)
            await teller.join(f"{ws_url}", await join_token(video[ENGINE], "s1", "teller", NODE))
            try:
                # the browser decodes the Python teller's VP8 at its size, frame after frame
                await tab.wait_for_function("window.state.frames >= 30", timeout=30000)
                assert await tab.evaluate("window.videoSize()") == [640, 480]
                # the Python teller decodes the browser's fake camera
                await wait_for(lambda: teller.received.frames["video"] >= 30 and teller.received.frames["audio"] >= 30,
                               timeout=30)
                assert await tab.evaluate("window.state.errors") == []
            finally:
                await teller.close()
        finally:
            await browser.close()
