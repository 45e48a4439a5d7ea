"""Packet-level call recording: RTP packets -> whole encoded frames -> WebM segments, no transcoding.

    packets (event loop) ── FrameAssembler (per track: reorder, depayload, keyframe flag)
                         └─ queue ── writer thread ── TrackWriter (per party and kind) ── segment files

Each track (one party's audio or video) is written to its own series of files of about
`segment_s` seconds: `<party>-<kind>[-r<k>]-<n>.webm` (VP8, Opus; `-r<k>`: the k-th track of that
party and kind, after a rejoin) or `.mkv` (H.264: WebM cannot hold it).
Every file's timestamps start at 0; the manifest gives each segment's place on the call's timeline
(`start_s`, seconds after the recording started, the same clock as the transcript's cue times) and
its `duration_s`. A segment is written as `.part` and renamed when it is closed, so a crash loses at most the open
segment and every `.webm`/`.mkv` is complete. Video segments
start on a keyframe: when a segment is due the writer asks the party's sender for one (PLI) and
rotates when it arrives. `finish_recording` closes everything and writes the manifest, whose files'
SHA-256 go into the audit chain.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.platform.config import Config
from cloudbank.video.packets import KeyframeRequester, Party, TrackInfo

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# How far (in seconds of media) newer packets may run ahead of a missing one before it is given up.
MAX_REORDER_S = 0.5
# A keyframe asked for and not seen by then is asked for again.
KEYFRAME_RETRY_S = 1.0


def recording_folder(config: Config, session_id: str) -> Path:
    """config.data/recordings/<session id>; refuses ids that could escape the folder."""
    if not _SAFE_ID.match(session_id):
        raise ValueError(f"session id {session_id!r} is not a plain name (letters, digits, _ and -)")
    return config.data / "recordings" / session_id


def first_free(folder: Path, stem: str, *suffixes: str) -> str:
    """`stem`, else `stem-2`, `stem-3`, ...: the first name free with every suffix.

    A session's room can open again after it closed (both parties dropped and rejoined, or another
    node took the call over) and must never overwrite files whose hashes are on the audit chain."""
    n = 1
    while True:
        name = stem if n == 1 else f"{stem}-{n}"
        if not any((folder / (name + suffix)).exists() for suffix in suffixes):
            return name
        n += 1


@dataclass(frozen=True)
class EncodedFrame:
    """One whole encoded frame of a track, in RTP order."""

    data: bytes
    timestamp: int  # RTP timestamp, unwrapped (it never goes back to 0)
    keyframe: bool
    arrival: float  # wall-clock time the frame's first packet arrived


def vp8_is_keyframe(frame: bytes) -> bool:
    # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
    return len(frame) >= 3 and not frame[0] & 1


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (start code 9d 01 2a)."""
    if len(frame) < 10 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(frame[8:10], "little") & 0x3FFF


def h264_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of an H.264 keyframe, by decoding it (once per segment: SPS parsing is long)."""
    try:
        codec = av.CodecContext.create("h264", "r")
        frames = [*codec.decode(av.Packet(frame)), *codec.decode(None)]
    except av.error.FFmpegError:
        return None
    return (frames[0].width, frames[0].height) if frames else None


def h264_is_keyframe(frame: bytes) -> bool:
    # An access unit holding an IDR slice (NAL type 5); Annex B start codes come from h264_depayload.
    return any(part and part[0] & 0x1F == 5 for part in frame.split(b"\x00\x00\x01")[1:])


class _Unwrapper:
    """Extends a wrapping counter (16-bit sequence, 32-bit timestamp) to one that only grows."""

    def __init__(self, bits: int) -> None:
        self.mod = 1 << bits
        self.last: int | None = None

    def __call__(self, value: int) -> int:
        if self.last is None:
            self.last = value
            return value
        delta = (value - self.last) % self.mod
        if delta >= self.mod // 2:
            delta -= self.mod
        extended = self.last + delta
        self.last = max(self.last, extended)
        return extended


@dataclass
class _Pending:
    payload: bytes
    timestamp: int
    marker: bool
    start: bool
    arrival: float


class FrameAssembler:
    """One track's packets (any order, duplicates, losses) -> its whole encoded frames, in order.

    A frame is the run of packets with one timestamp, from a start packet to the marker bit. A missing
    packet is waited for until newer packets run MAX_REORDER_S ahead; then its frame is dropped and
    (video) every frame until the next keyframe too, since they cannot be decoded: `keyframe_needed`
    is then True so the owner can ask the sender for one.
    """

    def __init__(self, mime_type: str, clock_rate: int) -> None:
        self.mime = mime_type.lower()
        if self.mime not in ("video/vp8", "video/h264", "audio/opus"):
            raise ValueError(f"cannot record {mime_type}: only VP8, H.264 and Opus")
        self.video = self.mime.startswith("video/")
        self.max_reorder = int(MAX_REORDER_S * clock_rate)
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._pending: dict[int, _Pending] = {}
        self._next: int | None = None
        self._need_keyframe = self.video
        self.frames_out = 0
        self.frames_lost = 0
        self.packets_bad = 0

    @property
    def keyframe_needed(self) -> bool:
        return self._need_keyframe

    def push(self, packet: RtpPacket, arrival: float | None = None) -> list[EncodedFrame]:
        seq = self._seq(packet.sequence_number)
        if (self._next is not None and seq < self._next) or seq in self._pending:
            return []  # late or duplicate (a retransmission we already have)
        try:
            payload, start = self._depayload(packet.payload)
        except ValueError:
            self.packets_bad += 1
            return []
        self._pending[seq] = _Pending(payload, self._ts(packet.timestamp), bool(packet.marker), start,
                                      time.time() if arrival is None else arrival)
        if self._next is None:
            self._next = seq
        return self._drain()

    def _depayload(self, payload: bytes) -> tuple[bytes, bool]:
        if self.mime == "video/vp8":
            descriptor, data = VpxPayloadDescriptor.parse(payload)
            return data, bool(descriptor.partition_start) and descriptor.partition_id == 0
        if self.mime == "video/h264":
            # FU-A continuation fragments come back without a start code.
            data = h264_depayload(payload)
            return data, data.startswith(b"\x00\x00\x00\x01")
        if not payload:
            raise ValueError("empty Opus payload")
        return payload, True

    def _drain(self) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        while self._pending:
            assert self._next is not None
            frame = self._take_frame(self._next)
            if frame is None:
                if not self._give_up_head():
                    break
                continue
            if self.video and self._need_keyframe and not frame.keyframe:
                continue  # undecodable until a keyframe: not recorded
            self._need_keyframe = False
            self.frames_out += 1
            out.append(frame)
        return out

    def _take_frame(self, first: int) -> EncodedFrame | None:
        """The whole frame starting at sequence `first`, removed from the buffer; None if incomplete."""
        head = self._pending.get(first)
        if head is None:
            return None
        if not self.video:
            del self._pending[first]
            self._next = first + 1
            return EncodedFrame(head.payload, head.timestamp, True, head.arrival)
        if not head.start:
            # The middle of a frame whose start was lost or came before we joined: drop up to a start.
            while head is not None and not head.start:
                del self._pending[first]
                first += 1
                head = self._pending.get(first)
            self._next = first
            self._mark_lost()
            if head is None:
                return None
        last = first
        last = first
        while not self._pending[last].marker:
            after = self._pending.get(last + 1)
            if after is None:
                return None
            if after.timestamp != head.timestamp:
                break  # the marker packet was lost but the next frame is here: this one ends
            last += 1
        parts = [self._pending.pop(s).payload for s in range(first, last + 1)]
        self._next = last + 1
        data = b"".join(parts)
        keyframe = vp8_is_keyframe(data) if self.mime == "video/vp8" else h264_is_keyframe(data)
        return EncodedFrame(data, head.timestamp, keyframe, head.arrival)

    def _give_up_head(self) -> bool:
        """Skip a gap at the head once newer packets are MAX_REORDER_S ahead; True if skipped."""
        assert self._next is not None
        newest = max(p.timestamp for p in self._pending.values())
        head = self._pending.get(self._next)
        oldest = head.timestamp if head is not None else min(p.timestamp for p in self._pending.values())
        if newest - oldest <= self.max_reorder and len(self._pending) < 2000:
            return False
        stuck_ts = oldest
        # Drop everything of the stuck frame, then resume at the first packet after the gap.
        for seq in sorted(self._pending):
            if self._pending[seq].timestamp == stuck_ts and self.video:
                del self._pending[seq]
        self._next = min(self._pending) if self._pending else self._next + 1
        self._mark_lost()
        return True

    def _mark_lost(self) -> None:
        self.frames_lost += 1
        if self.video:
            self._need_keyframe = True


def opus_head(channels: int, pre_skip: int = 312, rate: int = 48000) -> bytes:
    """The OpusHead block (RFC 7845 5.1) WebM keeps as the track's CodecPrivate."""
    return (b"OpusHead" + bytes([1, channels]) + pre_skip.to_bytes(2, "little") + rate.to_bytes(4, "little")
            + b"\x00\x00\x00")


@dataclass
class Segment:
    """One closed (complete) file of a track."""

    path: Path
    index: int
    frames: int
    first_pts: int
    last_pts: int
    started_at: float
    ended_at: float


@dataclass
class TrackRecord:
    """What was recorded of one track; the manifest's `tracks` entries."""

    info: TrackInfo
    segments: list[Segment] = field(default_factory=list)
    frames: int = 0
    skipped_waiting_keyframe: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None


class TrackWriter:
    """Writes one track's frames into rotating WebM segments; runs on the writer thread only."""

    def __init__(self, info: TrackInfo, folder: Path, segment_s: float, epoch: float,
                 request_keyframe: Callable[[], None], name: str = "") -> None:
        self.info = info
        self.folder = folder
        self.name = name or f"{info.party}-{info.kind}"
        self.segment_ticks = max(1, int(segment_s * info.clock_rate))
        self.epoch = epoch
        self.request_keyframe = request_keyframe
        self.record = TrackRecord(info)
        self.time_base = fractions.Fraction(1, info.clock_rate)
        self._container: Any = None
        self._stream: Any = None
        self._part: Path | None = None
        self._segment: Segment | None = None
        self._offset: int | None = None
        self._last_pts = -1
        self._asked_at = 0.0

    @property
    def video(self) -> bool:
        return self.info.kind == "video"

    def write(self, frame: EncodedFrame) -> None:
        if self._offset is None:
            # Place the track on the call's timeline: its first frame at its arrival time after epoch.
            self._offset = round((frame.arrival - self.epoch) * self.info.clock_rate) - frame.timestamp
            self.record.first_arrival = frame.arrival
        self.record.last_arrival = frame.arrival
        pts = max(frame.timestamp + self._offset, self._last_pts + 1)  # the muxer wants rising pts
        if self._segment is None:
            if self.video and not frame.keyframe:
                self.record.skipped_waiting_keyframe += 1
                self._ask_keyframe()
                return
            self._rotate(frame, pts)
        elif pts - self._segment.first_pts >= self.segment_ticks:
            if not self.video or frame.keyframe:
                self._rotate(frame, pts)
            else:
                self._ask_keyframe()  # the segment goes on until the keyframe arrives
        self._mux(frame, pts)

    def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if now - self._asked_at >= KEYFRAME_RETRY_S:
            self._asked_at = now
            self.request_keyframe()

    def _rotate(self, frame: EncodedFrame, pts: int) -> None:
        self.close()
        index = len(self.record.segments) + 1
        h264 = self.info.mime_type.lower() == "video/h264"
        # WebM holds VP8 and Opus only; H.264 goes into its parent format, Matroska.
        ext = "mkv" if h264 else "webm"
        while True:  # never overwrite a file (another node may have recorded this session before)
            name = f"{self.name}-{index:04d}.{ext}"
            if not (self.folder / name).exists() and not (self.folder / (name + ".part")).exists():
                break
            index += 1
        self._part = self.folder / (name + ".part")
        self._container = av.open(str(self._part), "w", format="matroska" if h264 else "webm")
        if self.video:
            self._stream = self._container.add_stream("h264" if h264 else "vp8")
            size = h264_size(frame.data) if h264 else vp8_size(frame.data)
            width, height = size or (640, 480)
            self._stream.width, self._stream.height = width, height
        else:
            self._stream = self._container.add_stream("opus", rate=self.info.clock_rate)
            self._stream.codec_context.extradata = opus_head(max(1, self.info.channels))
        self._stream.time_base = self.time_base
        self._segment = Segment(self.folder / name, index, 0, pts, pts, frame.arrival, frame.arrival)
        self._asked_at = 0.0  # the next segment's keyframe may be asked for at once

    def _mux(self, frame: EncodedFrame, pts: int) -> None:
        assert self._segment is not None
        packet = av.Packet(frame.data)
        # Each file starts at 0: a segment's place on the call's timeline is its manifest's start_s.
        # (Timeline pts in the file made a player show a segment 20-30 s as 30 s, the first 20 empty.)
        packet.pts = packet.dts = pts - self._segment.first_pts
        packet.time_base = self.time_base
        packet.stream = self._stream
        packet.is_keyframe = frame.keyframe
        self._container.mux(packet)
        self._last_pts = pts
        self._segment.frames += 1
        self._segment.last_pts = pts
        self._segment.ended_at = frame.arrival
        self.record.frames += 1

    def close(self) -> None:
        """Finish the open segment: trailer written, then renamed from .part (now complete)."""
        if self._container is None or self._segment is None or self._part is None:
            return
        self._container.close()
        self._part.replace(self._segment.path)
        self.record.segments.append(self._segment)
        self._container = self._stream = self._segment = self._part = None


_CLOSE = object()


class Recorder:
    """A PacketSink recording every track of one call into `folder` (see the module docstring).

    `on_rtp` runs on the event loop and only reorders and depayloads; the muxing and file writing
    happen on one writer thread per call, so a slow disk never delays forwarding.
    """

    def __init__(self, session_id: str, folder: Path, request_keyframe: KeyframeRequester,
                 segment_s: float = 10.0) -> None:
        if not segment_s > 0:
            raise ValueError(f"segment_s must be more than 0 seconds, not {segment_s}")
        self.session_id = session_id
        self.folder = folder
        self.segment_s = segment_s
        self.request_keyframe = request_keyframe
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.errors: list[str] = []
        self._assemblers: dict[tuple[Party, str, int], FrameAssembler] = {}
        self._writers: dict[tuple[Party, str, int], TrackWriter] = {}
        self._lost: dict[tuple[Party, str, int], int] = {}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        if self._closed:
            return
        key = (track.party, track.kind, track.ssrc)
        assembler = self._assemblers.get(key)
        if assembler is None:
            try:
                assembler = FrameAssembler(track.mime_type, track.clock_rate)
            except ValueError as exc:
                self._note_error(str(exc))
                return
            self._assemblers[key] = assembler
            self._lost[key] = 0
            self._start()
            if assembler.video:
                self._ask(track.party)  # the recording starts on a keyframe
        frames = assembler.push(packet, time.time())
        if assembler.frames_lost != self._lost[key]:
            # Frames after a loss cannot be decoded until the next keyframe: ask for it now.
            self._lost[key] = assembler.frames_lost
            if assembler.video:
                self._ask(track.party)
        if frames:
            self._queue.put((key, track, frames))

    def _note_error(self, message: str) -> None:
        if message not in self.errors:
            log.warning("recording %s: %s", self.session_id, message)
            self.errors.append(message)

    def _start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.session_id}", daemon=True)
        self._thread.start()

    def _ask(self, party: Party) -> None:
        try:
            self.request_keyframe(party)
        except Exception:  # a party that just left cannot be asked; the recording goes on
            log.exception("keyframe request to %s failed", party)

    def _ask_from_thread(self, party: Party) -> Callable[[], None]:
        def ask() -> None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._ask, party)

        return ask

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                break
            key, track, frames = item
            writer = self._writers.get(key)
            if writer is None:
                # A party that rejoins sends new tracks (new SSRC): their files get -r2, -r3, ...
                n = 1 + sum(1 for k in self._writers if k[:2] == key[:2])
                name = f"{track.party}-{track.kind}" + (f"-r{n}" if n > 1 else "")
                writer = TrackWriter(track, self.folder, self.segment_s, self.started_at,
                                     self._ask_from_thread(track.party), name)
                self._writers[key] = writer
            for frame in frames:
                try:
                    writer.write(frame)
                except Exception as exc:  # one broken track must not stop the others being recorded
                    self._note_error(f"{track.party} {track.kind}: {exc}")
        for writer in self._writers.values():
            try:
                writer.close()
            except Exception as exc:
                self._note_error(f"closing {writer.info.party} {writer.info.kind}: {exc}")

    async def close(self) -> None:
        """Stop recording: flush the queue, close every open segment. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.ended_at = time.time()
        if self._thread is not None:
            self._queue.put(_CLOSE)
            await asyncio.to_thread(self._thread.join)

    @property
    def tracks(self) -> list[TrackRecord]:
        return [w.record for w in self._writers.values()]

    def segments(self) -> list[Path]:
        return [s.path for t in self.tracks for s in t.segments]


async def finish_recording(recorder: Recorder, audit: AuditChain, data_root: Path, *, actor: str,
                           parties: dict[str, str] | None = None, transcripts: Sequence[Path] = (),
                           extra: dict[str, Any] | None = None) -> Path:
    """Close the recording, write manifest.json beside it and append its files' hashes to the audit chain.

    `parties` maps party -> client id; `transcripts` are files written beside the recording (VTT/JSON).
    File paths in the manifest and the audit record are relative to `data_root` (config.data), which
    is what `cloudbank audit verify` resolves them against. Returns the manifest path.
    """
    await recorder.close()
    paths = [*recorder.segments(), *transcripts]
    hashes = await asyncio.to_thread(lambda: {p: file_sha256(p) for p in paths})

    def rel(p: Path) -> str:
        return str(p.resolve().relative_to(data_root.resolve()))

    manifest = {
        "session_id": recorder.session_id,
        "started_at": recorder.started_at,
        "ended_at": recorder.ended_at,
        "segment_s": recorder.segment_s,
        "parties": parties or {},
        "tracks": [{
            "party": t.info.party, "kind": t.info.kind, "mime_type": t.info.mime_type,
            "clock_rate": t.info.clock_rate, "ssrc": t.info.ssrc, "frames": t.frames,
            "skipped_waiting_keyframe": t.skipped_waiting_keyframe,
            "first_frame_at": t.first_arrival, "last_frame_at": t.last_arrival,
            "segments": [{"path": rel(s.path), "sha256": hashes[s.path], "bytes": s.path.stat().st_size,
                          "frames": s.frames, "first_pts": s.first_pts, "last_pts": s.last_pts,
                          "start_s": round(s.first_pts / t.info.clock_rate, 3),
                          "duration_s": round((s.last_pts - s.first_pts) / t.info.clock_rate, 3),
                          "started_at": s.started_at, "ended_at": s.ended_at} for s in t.segments],
        } for t in recorder.tracks],
        "transcripts": [{"path": rel(p), "sha256": hashes[p]} for p in transcripts],
        "errors": recorder.errors,
        **(extra or {}),
    }
    recorder.folder.mkdir(parents=True, exist_ok=True)
    # manifest.json, or manifest-2.json... when the call's room opened again after a first one closed
    manifest_path = recorder.folder / (first_free(recorder.folder, "manifest", ".json") + ".json")
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    files = [{"path": rel(p), "sha256": hashes[p]} for p in paths]
    files.append({"path": rel(manifest_path), "sha256": file_sha256(manifest_path)})
    await audit.append(actor, "recording.finished", f"session:{recorder.session_id}",
                       {"files": files, "manifest": rel(manifest_path)})
    return manifest_path
