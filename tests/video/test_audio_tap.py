"""The audio tap: real Opus packets in, 16 kHz mono voiced stretches out, silence gated away."""

from __future__ import annotations

from typing import Any

import numpy as np
from aiortc.rtp import RtpPacket

from cloudbank.video.audio_tap import AudioTap, EnergyGate, level_dbfs
from cloudbank.video.packets import TrackInfo


class Collector:
    """A SpeechSink that keeps what it is given."""

    def __init__(self) -> None:
        self.utterances: list[list[tuple[bytes, float]]] = [[]]

    def feed(self, pcm: bytes, t: float) -> None:
        self.utterances[-1].append((pcm, t))

    def end(self) -> None:
        self.utterances.append([])

    def closed(self) -> list[list[tuple[bytes, float]]]:
        return [u for u in self.utterances if u]


def tone(seconds: float, rate: int = 48000, freq: float = 300.0, amp: int = 6000) -> np.ndarray:
    n = int(seconds * rate)
    return (np.sin(np.arange(n) * 2 * np.pi * freq / rate) * amp).astype(np.int16)


def silence(seconds: float, rate: int = 48000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


async def test_voiced_stretches_become_utterances_at_16k_with_call_times(audio_sender: Any) -> None:
    sender = audio_sender()
    sink = Collector()
    tap = AudioTap(lambda track: sink)
    pcm = np.concatenate([silence(1.0), tone(0.8), silence(1.2), tone(0.5, freq=500), silence(1.0)])
    for packet in sender.packets(pcm, 48000):
        tap.on_rtp(sender.track, packet)
    await tap.close()
    utterances = sink.closed()
    assert len(utterances) == 2
    for utt, (onset, length) in zip(utterances, [(1.0, 0.8), (3.0, 0.5)], strict=True):
        samples = np.frombuffer(b"".join(p for p, _ in utt), np.int16)
        start, end = utt[0][1], utt[-1][1] + 0.02
        # Pre-roll before the onset, hang-over after it: the voiced part is all inside.
        assert onset - 0.45 < start < onset
        assert onset + length < end < onset + length + 0.8
        assert len(samples) == round((end - start) * 16000)  # 16 kHz mono
        assert abs(len(samples) / 16000 - (end - start)) < 0.001
        assert level_dbfs(samples) > -30


async def test_16k_output_keeps_the_pitch(audio_sender: Any) -> None:
    sender = audio_sender()
    sink = Collector()
    tap = AudioTap(lambda track: sink)
    for packet in sender.packets(tone(1.0, freq=1000), 48000):
        tap.on_rtp(sender.track, packet)
    await tap.close()
    samples = np.frombuffer(b"".join(p for p, _ in sink.closed()[0]), np.int16)[1600:-1600].astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 16000 / len(samples)
    assert abs(peak_hz - 1000) < 20


async def test_silence_and_quiet_noise_feed_nothing(audio_sender: Any) -> None:
    sender = audio_sender()
    sink = Collector()
    tap = AudioTap(lambda track: sink)
    noise = (np.random.default_rng(1).normal(0, 40, 48000 * 2)).astype(np.int16)
    for packet in sender.packets(np.concatenate([silence(1.0), noise]), 48000):
        tap.on_rtp(sender.track, packet)
    await tap.close()
    assert sink.closed() == []


async def test_video_other_codecs_duplicates_and_garbage_are_ignored(audio_sender: Any) -> None:
    sender = audio_sender()
    sink = Collector()
    asked: list[str] = []

    def sink_for(track: TrackInfo) -> Collector:
        asked.append(track.mime_type)
        return sink

    tap = AudioTap(sink_for)
    video = TrackInfo("s1", "customer", "video", "video/VP8", 90000, 96, 9)
    pcmu = TrackInfo("s1", "teller", "audio", "audio/PCMU", 8000, 0, 8)
    tap.on_rtp(video, RtpPacket(payload_type=96, sequence_number=1, timestamp=1, ssrc=9, payload=b"\x10" * 50))
    tap.on_rtp(pcmu, RtpPacket(payload_type=0, sequence_number=1, timestamp=1, ssrc=8, payload=b"\xff" * 160))
    packets = sender.packets(np.concatenate([tone(0.6), silence(1.0)]), 48000)
    for i, packet in enumerate(packets):
        tap.on_rtp(sender.track, packet)
        tap.on_rtp(sender.track, packet)  # duplicate
        if i % 10 == 0:  # garbage with the next sequence number; the real packet after it is then late
            tap.on_rtp(sender.track, RtpPacket(payload_type=111, sequence_number=(packet.sequence_number + 1) % 65536,
                                               timestamp=packet.timestamp, ssrc=sender.ssrc,
                                               payload=b"\xff" * 1_000_000))
    await tap.close()
    assert asked == ["audio/opus"]
    [utterance] = sink.closed()
    assert 0.5 < sum(len(p) for p, _ in utterance) / 32000 < 1.6


def test_gate_hangover_keeps_short_pauses_inside_one_utterance() -> None:
    sink = Collector()
    gate = EnergyGate(hangover_s=0.5)
    loud, quiet = np.full(320, 5000, np.int16), np.zeros(320, np.int16)
    pattern = [loud] * 20 + [quiet] * 10 + [loud] * 20 + [quiet] * 40  # a 0.2 s pause, then 0.8 s
    for i, frame in enumerate(pattern):
        gate.push(frame, i * 0.02, sink)
    assert len(sink.closed()) == 1
