"""Snapshots: the customer's next keyframe (real VP8 packets) -> JPEG with faces found, kept as evidence."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.platform.config import Config
from cloudbank.platform.records import create_engine, migrate
from cloudbank.video.packets import TrackInfo
from cloudbank.video.recorder import recording_folder
from cloudbank.video.snapshot import FaceDetector, SnapshotFailed, SnapshotTaker


def drawn_face(w: int = 320, h: int = 240) -> np.ndarray:
    """A drawn face that OpenCV's frontal-face cascade detects (no photo is shipped on this machine)."""
    img = np.full((h, w, 3), 200, np.uint8)
    cx, cy = w // 2, h // 2
    cv2.ellipse(img, (cx, cy), (55, 72), 0, 0, 360, (120, 150, 190), -1)  # skin
    cv2.ellipse(img, (cx, cy - 70), (58, 30), 0, 180, 360, (30, 30, 40), -1)  # hair
    for sx in (-1, 1):
        cv2.ellipse(img, (cx + sx * 22, cy - 22), (14, 4), 0, 0, 360, (40, 40, 50), -1)  # brows
        cv2.ellipse(img, (cx + sx * 22, cy - 8), (11, 6), 0, 0, 360, (255, 255, 255), -1)  # eyes
        cv2.circle(img, (cx + sx * 22, cy - 8), 5, (20, 20, 20), -1)
    cv2.ellipse(img, (cx, cy + 14), (6, 14), 0, 0, 360, (100, 125, 165), -1)  # nose
    cv2.ellipse(img, (cx, cy + 38), (20, 6), 0, 0, 360, (60, 60, 140), -1)  # mouth
    return cv2.GaussianBlur(img, (5, 5), 0)


def blank(w: int = 320, h: int = 240) -> np.ndarray:
    return np.full((h, w, 3), 90, np.uint8)


@pytest.fixture
async def audit(config: Config) -> Any:
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    yield AuditChain(engine)
    await engine.dispose()


async def feed_until(task: asyncio.Future[Any], taker: SnapshotTaker, sender: Any,
                     images: Iterator[np.ndarray], limit: int = 60) -> None:
    """Send frames (one per loop turn, as they would arrive) until the snapshot is done."""
    for _ in range(limit):
        if task.done():
            return
        for packet in sender.frame_packets(next(images)):
            taker.on_rtp(sender.track, packet)
        await asyncio.sleep(0.001)


def test_the_cascade_finds_the_drawn_face_and_nothing_in_a_blank_image() -> None:
    detector = FaceDetector()
    assert len(detector.faces(drawn_face())) == 1
    assert detector.faces(blank()) == []


async def test_snapshot_is_the_next_keyframe_with_its_face_stored_and_audited(
        config: Config, video_sender: Any, audit: AuditChain) -> None:
    sender = video_sender(keyframe_every=0)
    folder = recording_folder(config, "snap1")
    taker = SnapshotTaker("snap1", folder, sender.request_keyframe, audit, config.data, actor="video:n1")
    for _ in range(10):  # before the request: no face, and no packet is even looked at
        for packet in sender.frame_packets(blank()):
            taker.on_rtp(sender.track, packet)
    task = asyncio.ensure_future(taker.take("user:teller1"))
    await asyncio.sleep(0)
    assert sender.keyframe_requested  # the request went to the customer's sender
    # From now on the customer shows a face; the next keyframe (the requested one) has it.
    await feed_until(task, taker, sender, itertools.repeat(drawn_face()))
    snapshot = await task
    assert len(snapshot.faces) == 1
    x, y, w, h = snapshot.faces[0]
    assert 60 < x + w / 2 < 260 and 40 < y + h / 2 < 200 and (snapshot.width, snapshot.height) == (320, 240)
    assert snapshot.path.parent == folder / "snapshots" and snapshot.path.suffix == ".jpg"
    assert snapshot.sha256 == file_sha256(snapshot.path)
    image = cv2.imread(str(snapshot.path))
    assert image.shape == (240, 320, 3) and len(FaceDetector().faces(image)) == 1
    [record] = await audit.records(subject="session:snap1")
    assert record.action == "snapshot.taken" and record.details["faces"] == 1
    assert record.details["files"] == [{"path": str(snapshot.path.relative_to(config.data)),
                                        "sha256": snapshot.sha256}]
    assert (await audit.verify(base=config.data)).ok
    snapshot.path.write_bytes(b"not the evidence")
    assert not (await audit.verify(base=config.data)).ok
    assert snapshot.event("/video/snapshots/snap1/customer-0001.jpg")["faces"] == [list(snapshot.faces[0])]


async def test_no_face_no_boxes_and_two_requests_share_a_keyframe(config: Config, video_sender: Any) -> None:
    sender = video_sender()
    taker = SnapshotTaker("snap2", recording_folder(config, "snap2"), sender.request_keyframe)
    first = asyncio.ensure_future(taker.take("user:a"))
    second = asyncio.ensure_future(taker.take("user:b"))
    await asyncio.sleep(0)
    await feed_until(asyncio.gather(first, second), taker, sender, itertools.repeat(blank()))
    a, b = await first, await second
    assert a.faces == [] and b.faces == []
    assert a.path != b.path and a.sha256 == b.sha256  # same frame, two pieces of evidence, none overwritten


async def test_no_video_times_out_with_a_clear_error(config: Config, video_sender: Any) -> None:
    sender = video_sender()
    taker = SnapshotTaker("snap3", recording_folder(config, "snap3"), sender.request_keyframe, timeout_s=0.2)
    teller = video_sender(party="teller", ssrc=77)
    task = asyncio.ensure_future(taker.take("user:t"))
    await asyncio.sleep(0)
    # The teller's video, the customer's audio and garbage are not the customer's video keyframe.
    audio = TrackInfo("snap3", "customer", "audio", "audio/opus", 48000, 111, 5, 2)
    for i in range(5):
        for packet in teller.frame_packets(drawn_face()):
            taker.on_rtp(teller.track, packet)
        taker.on_rtp(audio, RtpPacket(payload_type=111, sequence_number=i, timestamp=i * 960, ssrc=5,
                                      payload=b"\xfc" * 50))
        taker.on_rtp(sender.track, RtpPacket(payload_type=96, sequence_number=i, timestamp=i, ssrc=sender.ssrc,
                                             payload=b"\x90" if i % 2 else b"\x10" + b"\x00" * 1_000_000))
    with pytest.raises(SnapshotFailed, match="no video keyframe from the customer"):
        await task
    assert not (recording_folder(config, "snap3") / "snapshots").exists()


async def test_call_end_fails_a_pending_snapshot(config: Config, video_sender: Any) -> None:
    sender = video_sender()
    taker = SnapshotTaker("snap4", recording_folder(config, "snap4"), sender.request_keyframe)
    task = asyncio.ensure_future(taker.take("user:t"))
    await asyncio.sleep(0)
    await taker.close()
    with pytest.raises(SnapshotFailed, match="call ended"):
        await task


async def test_signalling_adapter_replies_and_tells_the_session(config: Config, video_sender: Any,
                                                                 redis_client: Any) -> None:
    from cloudbank.platform.events import add_to_audience, read

    await add_to_audience(redis_client, "snap5", "user:teller1")
    sender = video_sender()
    taker = SnapshotTaker("snap5", recording_folder(config, "snap5"), sender.request_keyframe, redis=redis_client)
    task = asyncio.ensure_future(taker.snapshot())
    await asyncio.sleep(0)
    await feed_until(task, taker, sender, itertools.repeat(drawn_face()))
    reply = await task
    assert reply["url"] == "/video/snapshots/snap5/customer-0001.jpg" and len(reply["faces"]) == 1
    [(_, event)] = await read(redis_client, "user:teller1")
    assert event == {"type": "snapshot", "session_id": "snap5", **reply}
