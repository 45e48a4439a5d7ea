"""The audio tap: real Opus packets in, 16 kHz mono voiced stretches out. The voice detector passes
festival speech and keeps silence, a 440 Hz tone, a sweep and white noise from the recogniser."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from cloudbank.platform.config import Config
from cloudbank.video.asr import AsrResult, asr_service
from cloudbank.video.audio_tap import FRAME_SAMPLES, AudioTap, VoiceGate, level_dbfs
from cloudbank.video.packets import TrackInfo
from cloudbank.video.sphinx import SphinxEngine, SphinxRecognizer


class Collector:
    """A SpeechSink that keeps what it is given: exactly what a recogniser would receive."""

    def __init__(self) -> None:
        self.utterances: list[list[tuple[bytes, float]]] = [[]]

    def feed(self, pcm: bytes, t: float) -> None:
        self.utterances[-1].append((pcm, t))

    def end(self) -> None:
        self.utterances.append([])

    def closed(self) -> list[list[tuple[bytes, float]]]:
        return [u for u in self.utterances if u]


# What an utterance holds beyond its speech: the pre-roll, the hang-over and a frame or two of slack.
PADDING_S = VoiceGate.preroll_s + VoiceGate.hangover_s + 0.2


def silence(seconds: float, rate: int = 48000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def tone(seconds: float, freq: float = 440.0, rate: int = 48000, amp: int = 8000) -> np.ndarray:
    n = int(seconds * rate)
    return (np.sin(np.arange(n) * 2 * np.pi * freq / rate) * amp).astype(np.int16)


def sweep(seconds: float, lo: float = 100.0, hi: float = 4000.0, rate: int = 48000, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * (lo * t + (hi - lo) / (2 * seconds) * t**2)) * amp).astype(np.int16)


def white_noise(seconds: float, rate: int = 48000, sd: float = 3000.0, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, sd, int(seconds * rate)).clip(-32768, 32767).astype(np.int16)


def loud_span(pcm: np.ndarray, rate: int = 48000) -> tuple[float, float]:
    """First and last 20 ms frame above -45 dBFS: where the speech in a clean clip is."""
    step = rate // 50
    loud = [i for i in range(0, len(pcm) - step + 1, step) if level_dbfs(pcm[i:i + step]) > -45]
    return loud[0] / rate, (loud[-1] + step) / rate


def through_tap(audio_sender: Any, pcm: np.ndarray) -> Collector:
    sender = audio_sender()
    packets = sender.packets(pcm, 48000)  # before the tap: its timeline starts at the first packet's arrival
    sink = Collector()
    tap = AudioTap(lambda track: sink)
    for packet in packets:
        tap.on_rtp(sender.track, packet)
    return sink


async def test_speech_becomes_utterances_at_16k_with_call_times(audio_sender: Any,
                                                                english_speech: dict[str, np.ndarray]) -> None:
    a, b = english_speech["savings"], english_speech["thanks"]
    pcm = np.concatenate([silence(1.0), a, silence(1.2), b, silence(1.0)])
    sender = audio_sender()
    packets = sender.packets(pcm, 48000)
    sink = Collector()
    tap = AudioTap(lambda track: sink)
    for packet in packets:
        tap.on_rtp(sender.track, packet)
    await tap.close()
    utterances = sink.closed()
    assert len(utterances) == 2
    spans = [tuple(1.0 + x for x in loud_span(a)), tuple(1.0 + len(a) / 48000 + 1.2 + x for x in loud_span(b))]
    for utt, (onset, offset) in zip(utterances, spans, strict=True):
        samples = np.frombuffer(b"".join(p for p, _ in utt), np.int16)
        start, end = utt[0][1], utt[-1][1] + FRAME_SAMPLES / 16000
        # Pre-roll before the onset, hang-over after the last word: all of the speech is inside.
        assert onset - VoiceGate.preroll_s - 0.15 < start < onset, (start, onset)
        assert offset < end < offset + VoiceGate.hangover_s + 0.4, (end, offset)
        assert len(samples) == round((end - start) * 16000)  # 16 kHz mono, no gaps
        assert level_dbfs(samples) > -35


async def test_16k_output_is_the_speech_resampled(audio_sender: Any, english_speech: dict[str, np.ndarray],
                                                  english_speech_16k: dict[str, bytes]) -> None:
    sink = through_tap(audio_sender, np.concatenate([english_speech["birth"], silence(1.0)]))
    [utt] = sink.closed()
    got = np.frombuffer(b"".join(p for p, _ in utt), np.int16).astype(float)
    ref = np.frombuffer(english_speech_16k["birth"], np.int16).astype(float)  # sox's 16 kHz of the same clip
    n = 1 << int(np.ceil(np.log2(len(got) + len(ref))))
    xcorr = np.fft.irfft(np.fft.rfft(got, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(np.abs(xcorr)))
    lag = lag - n if lag > n // 2 else lag
    ref = ref[max(0, -lag):]
    got = got[max(0, lag):]
    m = min(len(got), len(ref))
    similarity = float(np.corrcoef(got[:m], ref[:m])[0, 1])
    assert similarity > 0.8, similarity  # same pitch, same timing: resampled, not distorted


async def test_tone_sweep_and_white_noise_never_reach_the_recogniser(
        audio_sender: Any, english_speech: dict[str, np.ndarray]) -> None:
    for name, sound in (("440 Hz tone", tone(2.0)), ("sweep", sweep(2.0)), ("white noise", white_noise(2.0))):
        assert level_dbfs(sound) > -25  # loud: an energy gate passes all of them
        sink = through_tap(audio_sender, np.concatenate([silence(0.5), sound, silence(1.0)]))
        assert sink.closed() == [], name
    # Speech after them does: one utterance, starting where the speech does, none of the rest.
    noises = np.concatenate([tone(1.5), sweep(1.5), white_noise(1.5)])
    sink = through_tap(audio_sender, np.concatenate([noises, english_speech["thanks"], silence(1.0)]))
    [utt] = sink.closed()
    onset = len(noises) / 48000 + loud_span(english_speech["thanks"])[0]
    assert onset - VoiceGate.preroll_s - 0.15 < utt[0][1] < onset


async def test_silence_and_quiet_noise_feed_nothing(audio_sender: Any) -> None:
    sink = through_tap(audio_sender, np.concatenate([silence(1.0), white_noise(2.0, sd=40)]))
    assert sink.closed() == []


async def test_video_other_codecs_duplicates_and_garbage_are_ignored(audio_sender: Any,
                                                                     english_speech: dict[str, np.ndarray]) -> None:
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
    speech = english_speech["thanks"]
    for i, packet in enumerate(sender.packets(np.concatenate([speech, silence(1.0)]), 48000)):
        tap.on_rtp(sender.track, packet)
        tap.on_rtp(sender.track, packet)  # duplicate
        if i % 10 == 0:  # garbage with the next sequence number; the real packet after it is then late
            tap.on_rtp(sender.track, RtpPacket(payload_type=111, sequence_number=(packet.sequence_number + 1) % 65536,
                                               timestamp=packet.timestamp, ssrc=sender.ssrc,
                                               payload=b"\xff" * 1_000_000))
    await tap.close()
    assert asked == ["audio/opus"]
    [utterance] = sink.closed()
    first, last = loud_span(speech)
    assert (last - first) * 0.7 < sum(len(p) for p, _ in utterance) / 32000 < last - first + PADDING_S


def trimmed_16k(pcm: bytes) -> np.ndarray:
    samples = np.frombuffer(pcm, np.int16)
    first, last = loud_span(samples, 16000)
    return samples[int(first * 16000):int(last * 16000)]


def push_all(gate: VoiceGate, pcm: np.ndarray, sink: Collector) -> None:
    for i in range(0, len(pcm) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        gate.push(pcm[i:i + FRAME_SAMPLES], i / 16000, sink)
    gate.close(sink)


def test_hangover_keeps_short_pauses_inside_one_utterance(english_speech_16k: dict[str, bytes]) -> None:
    a, b = trimmed_16k(english_speech_16k["birth"]), trimmed_16k(english_speech_16k["thanks"])
    short, long = Collector(), Collector()
    push_all(VoiceGate(hangover_s=0.5), np.concatenate([a, silence(0.2, 16000), b, silence(1.0, 16000)]), short)
    push_all(VoiceGate(hangover_s=0.5), np.concatenate([a, silence(1.5, 16000), b, silence(1.0, 16000)]), long)
    assert len(short.closed()) == 1
    assert len(long.closed()) == 2
    with pytest.raises(ValueError, match="512"):
        VoiceGate().push(np.zeros(320, np.int16), 0.0, Collector())


class Spy(SphinxRecognizer):
    """The real pocketsphinx recogniser, counting the audio it is given."""

    received: list[int] = []

    def accept(self, pcm: bytes) -> AsrResult | None:
        Spy.received.append(len(pcm))
        return super().accept(pcm)


class SpyEngine(SphinxEngine):
    def recognizer(self, grammar: Any = None) -> SphinxRecognizer:
        return Spy(self.model, grammar)


@pytest.mark.slow
async def test_a_real_recogniser_hears_the_speech_and_nothing_of_the_noise(
        config: Config, audio_sender: Any, sphinx_engine: SphinxEngine, english_speech: dict[str, np.ndarray]) -> None:
    results: list[AsrResult] = []

    async def on_result(result: AsrResult) -> None:
        results.append(result)

    Spy.received.clear()
    async with asr_service(config.with_(asr_pool_size=1), engine=SpyEngine(sphinx_engine.model)) as service:
        service.pool.warm_s = 0
        Spy.received.clear()  # the pool's warm-up noise is not the call's
        stream = service.stream(on_result)
        sender = audio_sender()
        tap = AudioTap(lambda track: stream)
        noises = np.concatenate([tone(2.0), sweep(2.0), white_noise(2.0)])
        for packet in sender.packets(noises, 48000):
            tap.on_rtp(sender.track, packet)
        await tap.close()
        await stream.drain()
        assert Spy.received == [] and results == []  # not one sample of tone, sweep or noise
        speech = english_speech["rate"]
        for packet in sender.packets(np.concatenate([speech, silence(1.0)]), 48000):
            tap.on_rtp(sender.track, packet)
        await tap.close()
        await stream.drain()
    first, last = loud_span(speech)
    assert last - first < sum(Spy.received) / 32000 < last - first + PADDING_S
    finals = [r for r in results if r.final]
    assert {"interest", "rate", "deposit"} <= {w.word for r in finals for w in r.words}
