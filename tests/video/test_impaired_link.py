"""A customer on a bad branch line: 3 % loss, 150 ms +- 20 ms delay each way, then a 2 s blackout.

The customer (an aiortc test peer) reaches the video node only through `LossyLink`, a UDP relay on
127.0.0.1 (the kernel has no netem): its offer and the node's answer are rewritten so each side's
only candidate is a face of the relay. The teller is on a clean link. The teller keeps receiving
the customer's stamped frames under loss, gets them back within a bound after the blackout (the node
and the teller ask for a keyframe: PLIs are counted on the relay), the node NACKs the lost packets,
and every recorded segment of the customer's video decodes frame by frame.

Run it inside `unshare -n sh -c 'ip link set lo up; ...'`: every packet stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.config import Config
from cloudbank.platform.service import ENGINE
from cloudbank.video.app import create_app
from cloudbank.video.testing_link import Impairment, LossyLink
from cloudbank.video.testing_peers import Peer, join_token

pytestmark = pytest.mark.slow

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-a"
CUSTOMER, TELLER = 21, 22
BRANCH_LINE = Impairment(loss=0.03, delay_s=0.150, jitter_s=0.020, seed=11)
BLACKOUT_S = 2.0
RECOVERY_BOUND_S = 5.0


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (bounded) for a condition the code under test makes true."""
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a test polls a plain predicate
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def decode_all(path: Path) -> tuple[int, int, list[float]]:
    """(packets, decoded frames, keyframe times in s) of a recorded segment; raises on a decode error."""
    packets = frames = 0
    keyframes: list[float] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            packets += 1
            if packet.is_keyframe and packet.pts is not None and packet.time_base is not None:
                keyframes.append(float(packet.pts * packet.time_base))
            frames += len(packet.decode())
    return packets, frames, keyframes


def media_stream(peer: Peer) -> tuple[int, int]:
    """(received, lost) of the video stream the peer receives, RTX retransmissions apart.

    aiortc's getStats() gives every SSRC a receiver sees (media and RTX) the same id, so the RTX
    stream overwrites the media one in the report; its per-SSRC counters are read instead.
    """
    assert peer.pc is not None
    receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.kind == "video")
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    main = max(streams.values(), key=lambda st: st.packets_received)
    return main.packets_received, main.packets_lost


async def video_stats(peer: Peer, kind: str) -> Any:
    """The peer's getStats() entry of type `kind` (inbound-rtp, remote-inbound-rtp) for video."""
    assert peer.pc is not None
    report = await peer.pc.getStats()
    found = [s for s in report.values() if s.type == kind and getattr(s, "kind", None) == "video"]
    assert len(found) == 1, f"{peer.party}: {len(found)} video {kind} stats"
    return found[0]


async def test_video_survives_loss_delay_and_a_blackout(aiohttp_client: MakeClient, config: Config) -> None:
    cfg = config.with_(video_node_id=NODE, ice_addresses=("127.0.0.1",), asr_pool_size=0, video_drain_s=1.0,
                       recording_segment_s=2.0)
    node = await aiohttp_client(create_app(cfg))
    url = str(node.make_url("/ws"))
    link = LossyLink(BRANCH_LINE)
    await link.start()
    customer = Peer("customer", source=CUSTOMER, route=link)
    teller = Peer("teller", source=TELLER)
    try:
        await customer.join(url, await join_token(node.app[ENGINE], "s1", "customer", NODE), timeout=20)
        await teller.join(url, await join_token(node.app[ENGINE], "s1", "teller", NODE), timeout=20)
        assert link.node_address is not None and link.node_address != link.peer_face

        def seen() -> list[tuple[int, float]]:
            return [(c, t) for s, c, t in teller.received.stamps if s == CUSTOMER]

        # Under loss and delay: frames keep coming, in order, and the media really crossed the relay.
        await until(lambda: len(seen()) >= 90, 30, "90 of the customer's frames at the teller under loss")
        counters = [c for c, _ in seen()]
        assert counters == sorted(counters), "frames went back in time"
        assert link.up.rtp > 300 and link.up.lost > 0 and link.down.rtp > 0, (link.up, link.down)
        assert link.down.nacks > 0, "the node never NACKed a packet the link lost"
        rtt = (await video_stats(customer, "remote-inbound-rtp")).roundTripTime
        assert rtt is not None and rtt > 0.25, f"RTT {rtt}: the delay was not on the path"

        # The blackout: nothing reaches the teller while it lasts; then frames come back, quickly.
        plis_before, up_before = link.down.plis, link.up.forwarded
        last_before = max(c for c, _ in seen())
        dark_from = time.monotonic()
        dark_until = link.blackout(BLACKOUT_S)
        dark_until_wall = time.time() + (dark_until - time.monotonic())
        await until(lambda: any(c > last_before and t > dark_until for c, t in seen()),
                    BLACKOUT_S + RECOVERY_BOUND_S + 2, "the customer's video after the blackout")
        resumed = min(t for c, t in seen() if c > last_before and t > dark_until)
        recovery = resumed - dark_until
        during = [c for c, t in seen() if dark_from + 0.5 < t < dark_until]
        assert during == [], f"{len(during)} frames crossed a dead link"
        assert link.up.blacked_out > 50 and link.up.forwarded > up_before
        print(f"\nimpaired link: video back {recovery:.2f} s after a {BLACKOUT_S:.0f} s blackout; "
              f"PLIs to the customer during recovery {link.down.plis - plis_before}")
        assert recovery < RECOVERY_BOUND_S, f"video took {recovery:.2f} s to come back"
        await until(lambda: any(t > dark_until for t in link.down.keyframe_requests_at), RECOVERY_BOUND_S,
                    "a keyframe request to the customer after the blackout")
        asked = min(t for t in link.down.keyframe_requests_at if t > dark_until) - dark_until
        print(f"impaired link: keyframe asked {asked:.2f} s after the blackout")
        back = len(seen())
        await until(lambda: len(seen()) >= back + 30, 15, "frames flowing again after the blackout")
        counters = [c for c, _ in seen()]
        assert counters == sorted(counters), "frames went back in time"

        # What the receivers saw: the node's reports to the customer, the teller's own counters.
        node_view = await video_stats(customer, "remote-inbound-rtp")
        teller_received, teller_lost = media_stream(teller)
        print(f"impaired link: relay up {link.up}\nimpaired link: relay down {link.down}\n"
              f"impaired link: node saw {node_view.packetsLost} lost (last report {node_view.fractionLost}/256),"
              f" RTT {node_view.roundTripTime:.3f} s; teller saw {teller_lost} lost of"
              f" {teller_received}; teller frames {len(seen())}, unreadable {teller.received.unreadable}")
    finally:
        await customer.close()
        await teller.close()
        link.close()

    # The recording of the customer's video: every segment decodes, every packet into a frame.
    folder = cfg.data / "recordings" / "s1"
    await until(lambda: (folder / "manifest.json").exists(), 20, "the recording's manifest")
    manifest = json.loads((folder / "manifest.json").read_text())
    segments = [s for t in manifest["tracks"] if t["party"] == "customer" and t["kind"] == "video"
                for s in t["segments"]]
    assert len(segments) >= 3, segments
    total, keyframes_at = 0, []
    for seg in segments:
        path = cfg.data / seg["path"]
        packets, frames, keyframes = await asyncio.to_thread(decode_all, path)
        assert packets > 0 and frames == packets, f"{path.name}: {frames} frames from {packets} packets"
        total += frames
        # A keyframe's wall-clock time: the recording's start + the segment's place + its pts.
        keyframes_at += [manifest["started_at"] + seg["start_s"] + k for k in keyframes]
    # After the blackout the recorder keeps nothing until a keyframe (the frames in between have no
    # reference); the first one is when the picture is whole again, for the teller too.
    after = [k - dark_until_wall for k in keyframes_at if k > dark_until_wall]
    assert after, "no keyframe was recorded after the blackout"
    print(f"impaired link: {len(segments)} customer video segments, {total} frames, all decoded; "
          f"first keyframe {min(after):.2f} s after the blackout")
    assert min(after) < RECOVERY_BOUND_S
