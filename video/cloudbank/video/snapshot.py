"""Snapshots as evidence: on a teller's request, the customer's NEXT video keyframe is decoded to a
JPEG, OpenCV's Haar face cascade counts the faces in it, and the image is stored with the session
(`recordings/<session>/snapshots/`) with its SHA-256 in the audit chain.

The taker is a PacketSink on the customer's video. It looks at packets only while a snapshot is
wanted: it asks the sender for a keyframe (PLI), assembles the next keyframe from the packets and
decodes just that one frame (in a worker thread), so watching costs nothing between requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import cv2.data
import numpy as np
from aiortc.rtp import RtpPacket
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.platform.errors import CloudbankError
from cloudbank.platform.events import publish_to_session
from cloudbank.video.packets import KeyframeRequester, Party, TrackInfo
from cloudbank.video.recorder import EncodedFrame, FrameAssembler

log = logging.getLogger(__name__)

FACE_CASCADE = "haarcascade_frontalface_default.xml"
JPEG_QUALITY = 90


class SnapshotFailed(CloudbankError):
    """No snapshot could be taken; `code` and `message` go to the teller."""

    code = "snapshot_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FaceDetector:
    """OpenCV's frontal-face Haar cascade (shipped with opencv-python). Not thread-safe: one per thread
    or one call at a time (the taker runs one detection at a time)."""

    def __init__(self) -> None:
        path = Path(cv2.data.haarcascades) / FACE_CASCADE
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise SnapshotFailed(f"the face cascade {path} is missing: install opencv-python-headless<5")

    def faces(self, bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, width, height), largest first."""
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        side = max(24, min(gray.shape[:2]) // 10)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        boxes = [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: -b[2] * b[3])


@dataclass(frozen=True)
class Snapshot:
    path: Path
    sha256: str
    faces: list[tuple[int, int, int, int]]
    width: int
    height: int
    taken_at: float

    def event(self, url: str) -> dict[str, Any]:
        """The protocol's `snapshot` event / signalling reply (the URL is the node's to give)."""
        return {"type": "snapshot", "url": url, "faces": [list(f) for f in self.faces],
                "width": self.width, "height": self.height}


def decode_keyframe(mime_type: str, frame: EncodedFrame) -> np.ndarray:
    """One keyframe -> BGR pixels, with a fresh decoder (a keyframe needs no earlier frame)."""
    codec = av.CodecContext.create("libvpx" if mime_type.lower() == "video/vp8" else "h264", "r")
    frames = [*codec.decode(av.Packet(frame.data)), *codec.decode(None)]
    if not frames:
        raise SnapshotFailed("the keyframe could not be decoded")
    return np.ascontiguousarray(frames[0].to_ndarray(format="bgr24"))


class SnapshotTaker:
    """A PacketSink for one party's video (the customer's) that takes snapshots on request."""

    def __init__(self, session_id: str, folder: Path, request_keyframe: KeyframeRequester,
                 audit: AuditChain | None = None, data_root: Path | None = None, actor: str = "video",
                 party: Party = "customer", timeout_s: float = 5.0, redis: Redis | None = None,
                 url_prefix: str = "/video/snapshots") -> None:
        self.session_id = session_id
        self.folder = folder
        self.request_keyframe = request_keyframe
        self.audit = audit
        self.data_root = data_root
        self.actor = actor
        self.party = party
        self.timeout_s = timeout_s
        self.redis = redis
        self.url_prefix = url_prefix.rstrip("/")
        self._waiters: list[asyncio.Future[tuple[TrackInfo, EncodedFrame]]] = []
        self._assembler: FrameAssembler | None = None
        self._detector: FaceDetector | None = None
        self._lock = asyncio.Lock()  # one decode/detect at a time: the cascade is not thread-safe
        self._numbers = itertools.count(1)

    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        if not self._waiters or track.party != self.party or track.kind != "video":
            return
        if self._assembler is None:
            try:
                self._assembler = FrameAssembler(track.mime_type, track.clock_rate)
            except ValueError as exc:
                self._fail(SnapshotFailed(str(exc)))
                return
        for frame in self._assembler.push(packet):
            if frame.keyframe:  # the assembler yields only decodable frames: the first is a keyframe
                waiters, self._waiters, self._assembler = self._waiters, [], None
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result((track, frame))
                return

    def _fail(self, exc: Exception) -> None:
        waiters, self._waiters, self._assembler = self._waiters, [], None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    async def take(self, requested_by: str) -> Snapshot:
        """Wait for the next keyframe (asking for one), store it as a JPEG, detect faces, audit it.

        Raises SnapshotFailed when no keyframe comes within `timeout_s` (no video from the party).
        """
        waiter: asyncio.Future[tuple[TrackInfo, EncodedFrame]] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            self.request_keyframe(self.party)
        except Exception:  # the party may be gone; the timeout says so
            log.exception("keyframe request for a snapshot failed")
        try:
            track, frame = await asyncio.wait_for(waiter, self.timeout_s)
        except TimeoutError:
            raise SnapshotFailed(f"no video keyframe from the {self.party} within {self.timeout_s:g} s") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        async with self._lock:
            snapshot = await asyncio.to_thread(self._store, track, frame)
        if self.audit is not None:
            path = snapshot.path.resolve()
            shown = str(path.relative_to(self.data_root.resolve())) if self.data_root else str(path)
            await self.audit.append(self.actor, "snapshot.taken", f"session:{self.session_id}",
                                    {"files": [{"path": shown, "sha256": snapshot.sha256}],
                                     "faces": len(snapshot.faces), "requested_by": requested_by,
                                     "party": self.party})
        return snapshot

    def _store(self, track: TrackInfo, frame: EncodedFrame) -> Snapshot:
        bgr = decode_keyframe(track.mime_type, frame)
        if self._detector is None:
            self._detector = FaceDetector()
        faces = self._detector.faces(bgr)
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise SnapshotFailed("the image could not be encoded as JPEG")
        snapshots = self.folder / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        taken_at = time.time()
        while True:  # never overwrite evidence, even across restarts of the node
            path = snapshots / f"{self.party}-{next(self._numbers):04d}.jpg"
            try:
                with path.open("xb") as f:
                    f.write(jpeg.tobytes())
                break
            except FileExistsError:
                continue
        return Snapshot(path, file_sha256(path), faces, bgr.shape[1], bgr.shape[0], taken_at)

    def url(self, snapshot: Snapshot) -> str:
        """`<url_prefix>/<session id>/<file>`: the node serves the session's snapshots folder there."""
        return f"{self.url_prefix}/{self.session_id}/{snapshot.path.name}"

    async def snapshot(self, requested_by: str = "teller") -> dict[str, Any]:
        """For signalling's `{type: "snapshot"}`: take one, send the `snapshot` event to the session's
        audience (if Redis was given) and return the reply's fields (url, faces, width, height)."""
        snapshot = await self.take(requested_by)
        event = snapshot.event(self.url(snapshot))
        if self.redis is not None:
            try:
                await publish_to_session(self.redis, self.session_id, event)
            except (RedisError, OSError):
                log.warning("snapshot %s: event not published", self.session_id)
        return {k: v for k, v in event.items() if k != "type"}

    async def close(self) -> None:
        self._fail(SnapshotFailed("the call ended before a snapshot could be taken"))
