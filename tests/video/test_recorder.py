"""Recording from real VP8/Opus RTP packets: every frame in order, segments complete, hashes in the audit chain."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.platform.config import Config
from cloudbank.platform.records import create_engine, migrate
from cloudbank.video.packets import TrackInfo
from cloudbank.video.recorder import FrameAssembler, Recorder, finish_recording, recording_folder


def decoded_stamps(paths: list[Path], read_stamp: Any) -> list[int]:
    out: list[int] = []
    for path in paths:
        with av.open(str(path)) as container:
            out += [read_stamp(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    return out


def shuffle_nearby(packets: list[RtpPacket], seed: int) -> list[RtpPacket]:
    """Reorder within small windows and duplicate some packets, as a network would (the first stays first:
    the recorder starts at the first packet it sees)."""
    rng = random.Random(seed)
    keyed = [(i + rng.uniform(0, 4), p) for i, p in enumerate(packets[1:])]
    out = packets[:1] + [p for _, p in sorted(keyed, key=lambda kp: kp[0])]
    return out + rng.sample(packets, k=min(5, len(packets)))


@pytest.fixture
async def audit(config: Config) -> Any:
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    yield AuditChain(engine)
    await engine.dispose()


async def test_every_frame_recorded_in_order_despite_reordering(config: Config, video_sender: Any,
                                                                stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    sender = video_sender(keyframe_every=30)
    recorder = Recorder("s1", recording_folder(config, "s1"), sender.request_keyframe, segment_s=60)
    packets = [p for i in range(45) for p in sender.frame_packets(stamp_image(i))]
    for packet in shuffle_nearby(packets, seed=1):
        recorder.on_rtp(sender.track, packet)
    await recorder.close()
    segments = recorder.segments()
    assert len(segments) == 1 and segments[0].suffix == ".webm"
    assert decoded_stamps(segments, read_stamp) == list(range(45))
    assert sender.requests >= 1  # a keyframe is asked for when the recording starts


async def test_segments_rotate_on_keyframes_and_each_file_is_complete(config: Config, video_sender: Any,
                                                                      stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    sender = video_sender(keyframe_every=10)
    folder = recording_folder(config, "rot")
    recorder = Recorder("rot", folder, sender.request_keyframe, segment_s=1.0)
    for i in range(60):  # 4 s at 15 fps
        for packet in sender.frame_packets(stamp_image(i)):
            recorder.on_rtp(sender.track, packet)
    await recorder.close()
    segments = recorder.segments()
    assert len(segments) >= 3
    assert not list(folder.glob("*.part"))
    seen: list[int] = []
    for path in segments:  # each segment decodes alone, from its first frame (a keyframe)
        with av.open(str(path)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
            assert packets[0].is_keyframe
        stamps_here = decoded_stamps([path], read_stamp)
        assert len(stamps_here) == len(packets)
        seen += stamps_here
    assert seen == list(range(60))


async def test_open_segment_is_a_part_file_until_closed(config: Config, video_sender: Any, stamps: Any) -> None:
    """What a crash would leave: closed segments complete, the open one clearly marked .part."""
    stamp_image, read_stamp = stamps
    sender = video_sender(keyframe_every=10)
    folder = recording_folder(config, "crash")
    recorder = Recorder("crash", folder, sender.request_keyframe, segment_s=1.0)
    for i in range(40):
        for packet in sender.frame_packets(stamp_image(i)):
            recorder.on_rtp(sender.track, packet)
    # Let the writer thread catch up without closing the recorder: frame 20 (a keyframe 1.33 s in)
    # closed the first segment and opened the second.
    for _ in range(500):
        if list(folder.glob("*.webm")) and list(folder.glob("*.part")):
            break
        await asyncio.sleep(0.01)
    [complete] = folder.glob("*.webm")
    assert [p.name for p in folder.glob("*.part")] == ["customer-video-0002.webm.part"]
    assert decoded_stamps([complete], read_stamp) == list(range(20))
    await recorder.close()


async def test_loss_drops_frames_until_next_keyframe_and_asks_for_one(config: Config, video_sender: Any,
                                                                      stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    sender = video_sender()
    recorder = Recorder("loss", recording_folder(config, "loss"), sender.request_keyframe, segment_s=60)
    requests_before = 0
    for i in range(40):
        packets = sender.frame_packets(stamp_image(i))
        if i == 10:
            packets = packets[1:]  # the start of frame 10 never arrives
            requests_before = sender.requests
        for packet in packets:
            recorder.on_rtp(sender.track, packet)
    await recorder.close()
    got = decoded_stamps(recorder.segments(), read_stamp)
    assert sender.requests > requests_before
    # Frames 0-9, then nothing until the sender's next (requested) keyframe, then every frame after it.
    assert got[:10] == list(range(10))
    resumed = got[10:]
    assert resumed and resumed == list(range(resumed[0], 40)) and resumed[0] > 10


async def test_audio_every_opus_packet_recorded(config: Config, audio_sender: Any) -> None:
    sender = audio_sender()
    recorder = Recorder("aud", recording_folder(config, "aud"), lambda party: None, segment_s=1.0)
    tone = (np.sin(np.arange(48000 * 3) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    packets = sender.packets(tone, 48000)
    for packet in shuffle_nearby(packets, seed=2):
        recorder.on_rtp(sender.track, packet)
    await recorder.close()
    total = 0
    for path in recorder.segments():
        with av.open(str(path)) as container:
            assert container.streams.audio[0].codec_context.name == "opus"
            total += sum(1 for p in container.demux(audio=0) if p.size)
    assert len(recorder.segments()) >= 2
    assert total == len(packets)


async def test_manifest_hashes_verify_and_tampering_is_caught(config: Config, video_sender: Any,
                                                              audio_sender: Any, stamps: Any, audit: Any) -> None:
    stamp_image, _ = stamps
    video, audio = video_sender(keyframe_every=10), audio_sender()
    folder = recording_folder(config, "call1")
    recorder = Recorder("call1", folder, video.request_keyframe, segment_s=1.0)
    for i in range(30):
        for packet in video.frame_packets(stamp_image(i)):
            recorder.on_rtp(video.track, packet)
    for packet in audio.packets(np.zeros(48000 * 2, np.int16), 48000):
        recorder.on_rtp(audio.track, packet)
    transcript = folder / "transcript.json"
    transcript.write_text("[]")
    manifest_path = await finish_recording(recorder, audit, config.data, actor="video:test",
                                           parties={"customer": "device:k1"}, transcripts=[transcript])
    manifest = json.loads(manifest_path.read_text())
    assert manifest["session_id"] == "call1" and manifest["parties"] == {"customer": "device:k1"}
    assert {(t["party"], t["kind"]) for t in manifest["tracks"]} == {("customer", "video"), ("customer", "audio")}
    assert manifest["started_at"] <= manifest["ended_at"]
    for track in manifest["tracks"]:
        for seg in track["segments"]:
            assert file_sha256(config.data / seg["path"]) == seg["sha256"]
    assert manifest["transcripts"][0]["sha256"] == file_sha256(transcript)
    [record] = await audit.records(subject="session:call1")
    assert record.action == "recording.finished"
    assert {"path": str(manifest_path.relative_to(config.data)), "sha256": file_sha256(manifest_path)} \
        in record.details["files"]
    assert (await audit.verify(base=config.data)).ok

    victim = config.data / manifest["tracks"][0]["segments"][0]["path"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = await audit.verify(base=config.data)
    assert not result.ok and "does not match" in result.problem


async def test_a_room_opened_again_never_overwrites_the_first_manifest(config: Config, video_sender: Any,
                                                                      stamps: Any, audit: Any) -> None:
    """Both parties dropped (the room closed and wrote its manifest) and joined again: the second
    room's recording gets its own manifest and the first one, on the audit chain, still verifies."""
    stamp_image, _ = stamps
    folder = recording_folder(config, "again")
    manifests = []
    for ssrc, frames in ((1, range(0, 10)), (2, range(10, 20))):
        sender = video_sender(ssrc=ssrc)
        recorder = Recorder("again", folder, sender.request_keyframe, segment_s=60)
        for i in frames:
            for packet in sender.frame_packets(stamp_image(i)):
                recorder.on_rtp(sender.track, packet)
        manifests.append(await finish_recording(recorder, audit, config.data, actor="video:test"))
    assert [p.name for p in manifests] == ["manifest.json", "manifest-2.json"]
    first, second = (json.loads(p.read_text()) for p in manifests)
    assert first["tracks"][0]["segments"][0]["path"] != second["tracks"][0]["segments"][0]["path"]
    assert len(await audit.records(subject="session:again")) == 2
    assert (await audit.verify(base=config.data)).ok


async def test_garbage_packets_and_unknown_codecs_change_nothing(config: Config, video_sender: Any,
                                                                 stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    sender = video_sender()
    recorder = Recorder("bad", recording_folder(config, "bad"), sender.request_keyframe, segment_s=60)
    g711 = TrackInfo("bad", "teller", "audio", "audio/PCMU", 8000, 0, 5)
    recorder.on_rtp(g711, RtpPacket(payload_type=0, sequence_number=1, timestamp=1, ssrc=5, payload=b"x" * 160))
    for i in range(10):
        for packet in sender.frame_packets(stamp_image(i)):
            recorder.on_rtp(sender.track, packet)
        # An empty payload, a truncated descriptor and a 1 MB payload with a bogus sequence number.
        for junk in (b"", b"\x80", b"\x90\x80" + b"\xff" * 1_000_000):
            recorder.on_rtp(sender.track, RtpPacket(payload_type=96, sequence_number=(sender.seq + 30000) % 65536,
                                                    timestamp=0, ssrc=sender.ssrc, payload=junk))
    await recorder.close()
    assert any("PCMU" in e for e in recorder.errors)
    assert decoded_stamps(recorder.segments(), read_stamp) == list(range(10))


async def test_joining_mid_call_starts_on_the_keyframe_it_asks_for(config: Config, video_sender: Any,
                                                                   stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    sender = video_sender()
    for i in range(5):  # frames sent before the recorder existed
        sender.frame_packets(stamp_image(i))
    recorder = Recorder("mid", recording_folder(config, "mid"), sender.request_keyframe, segment_s=60)
    for i in range(5, 20):
        for packet in sender.frame_packets(stamp_image(i)):
            recorder.on_rtp(sender.track, packet)
    await recorder.close()
    # Frame 5 is not a keyframe: the recorder asks at once, and the sender's next frame (6) is one.
    assert decoded_stamps(recorder.segments(), read_stamp) == list(range(6, 20))
    assert recorder.tracks[0].skipped_waiting_keyframe == 0  # frame 5 never reached the writer: undecodable


@pytest.mark.slow
async def test_h264_goes_into_matroska(config: Config, stamps: Any) -> None:
    import fractions

    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    stamp_image, read_stamp = stamps
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102,
                                                parameters={"packetization-mode": "1",
                                                            "profile-level-id": "42e01f"}))
    track = TrackInfo("h", "teller", "video", "video/H264", 90000, 102, 7)
    recorder = Recorder("h", recording_folder(config, "h"), lambda party: None, segment_s=60)
    seq = 0
    for i in range(20):
        frame = av.VideoFrame.from_ndarray(stamp_image(i), format="bgr24")
        frame.pts, frame.time_base = i * 6000, fractions.Fraction(1, 90000)
        payloads, ts = encoder.encode(frame, force_keyframe=i == 0)
        for j, payload in enumerate(payloads):
            recorder.on_rtp(track, RtpPacket(payload_type=102, marker=int(j == len(payloads) - 1),
                                             sequence_number=seq, timestamp=ts, ssrc=7, payload=payload))
            seq += 1
    await recorder.close()
    [segment] = recorder.segments()
    assert segment.suffix == ".mkv" and not recorder.errors
    assert decoded_stamps([segment], read_stamp) == list(range(20))


async def test_a_rejoin_records_the_new_track_beside_the_old_one(config: Config, video_sender: Any,
                                                                 stamps: Any) -> None:
    stamp_image, read_stamp = stamps
    folder = recording_folder(config, "rejoin")
    (folder / "customer-video-0001.webm").parent.mkdir(parents=True)
    (folder / "customer-video-0001.webm").write_bytes(b"left by an earlier node")
    first, second = video_sender(ssrc=1), video_sender(ssrc=2, seq=7)
    recorder = Recorder("rejoin", folder, first.request_keyframe, segment_s=60)
    for sender, frames in ((first, range(0, 10)), (second, range(10, 20))):
        for i in frames:
            for packet in sender.frame_packets(stamp_image(i)):
                recorder.on_rtp(sender.track, packet)
    await recorder.close()
    names = sorted(p.name for p in recorder.segments())
    assert names == ["customer-video-0002.webm", "customer-video-r2-0001.webm"]
    assert (folder / "customer-video-0001.webm").read_bytes() == b"left by an earlier node"
    assert decoded_stamps(recorder.segments(), read_stamp) == list(range(20))


def test_recording_folder_refuses_path_tricks(config: Config) -> None:
    assert recording_folder(config, "abc-1_2") == config.data / "recordings" / "abc-1_2"
    for bad in ("../x", "a/b", "", ".", "x" * 65, "a\x00", "/etc"):
        with pytest.raises(ValueError):
            recording_folder(config, bad)


def test_assembler_refuses_unknown_codec() -> None:
    with pytest.raises(ValueError):
        FrameAssembler("video/AV1", 90000)
