"""The accuracy run of `cloudbank bench asr`: what each installed speech engine gets right, and at what cost.

Fixed bank sentences (service requests, numbers, disclosures, customer answers) are spoken by festival
at bench time, once clean and once with white noise mixed in at 15 dB SNR, and go through the path a
call takes: Opus encoded in 20 ms packets as a browser sends them, paced in real time into the video
node's `AudioTap` (decode, resample, silero voice gate), then the engine's free decoding and its phrase
search (`AsrService`, as a node runs them). `streams` sentences run at once, like that many calls.

Per engine it reports: word error rate (clean, noisy); phrase-spotting recall over the sentences that
contain a phrase and false alarms per 100 sentences that contain none; the real-time factor (CPU
seconds of the whole process per second of audio, all stages) and so streams per core; memory per
stream (RSS growth for the engine's warmed recognisers, per stream); and the time from the end of
speech in a sentence to its last final result (p50, p95; it includes the voice gate's hang-over).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.rtp import RtpPacket

from cloudbank.platform.config import Config
from cloudbank.platform.errors import ConfigError, StartupError
from cloudbank.video.asr import AsrResult, AsrService, Engine, load_engine
from cloudbank.video.audio_tap import AudioTap
from cloudbank.video.keywords import KeywordRule, normalise, spot_phrases
from cloudbank.video.lexicon import spoken_form, words_of
from cloudbank.video.packets import TrackInfo
from cloudbank.video.speech_synth import festival_pcm, require_tools

RATE = 48000
PACKET_S = 0.02
SNR_DB = 15.0
TAIL_S = 1.5  # silence after each sentence: the voice gate ends the utterance by itself

# The phrases a bank's services listen for (keywords, required and forbidden phrases).
PHRASES = ("savings account", "fixed deposit", "interest rate", "credit card", "you may lose money",
           "not guaranteed", "date of birth", "early withdrawal")

# (category, text). Numbers are written as they are said, so the reference is what was spoken.
SENTENCES: tuple[tuple[str, str], ...] = (
    ("request", "I would like to open a savings account."),
    ("request", "How much is the interest rate on a fixed deposit?"),
    ("request", "Can I apply for a credit card today?"),
    ("request", "I want to move my money into a fixed deposit."),
    ("request", "Is there a fee for early withdrawal?"),
    ("request", "My daughter needs a savings account for school."),
    ("request", "What interest rate do you pay on this account?"),
    ("request", "I lost my credit card yesterday."),
    ("request", "I would like to send money to my son abroad."),
    ("request", "Can you help me pay my electricity bill?"),
    ("request", "I need to change the address on my account."),
    ("request", "Please show me how to use the mobile app."),
    ("request", "I want to talk about a loan for a new car."),
    ("request", "Could you print a statement for last month?"),
    ("numbers", "I want to deposit five thousand dollars."),
    ("numbers", "My account number is four two seven nine one."),
    ("numbers", "Please transfer two hundred and fifty dollars."),
    ("numbers", "The loan is for twenty years."),
    ("numbers", "My phone number ends in three eight six."),
    ("numbers", "I was born in nineteen seventy two."),
    ("numbers", "The interest rate is three point five percent."),
    ("numbers", "Take out one hundred dollars in cash please."),
    ("disclosure", "This fund is not guaranteed and you may lose money."),
    ("disclosure", "Please confirm your date of birth."),
    ("disclosure", "An early withdrawal from a fixed deposit loses the interest."),
    ("disclosure", "The value of this product is not guaranteed."),
    ("disclosure", "If markets fall you may lose money."),
    ("disclosure", "This call is recorded for your protection."),
    ("disclosure", "Please read the terms before you sign."),
    ("disclosure", "You can cancel within fourteen days."),
    ("disclosure", "Past results do not promise future returns."),
    ("answer", "Yes, that is correct."),
    ("answer", "No, I do not want that."),
    ("answer", "Thank you for waiting."),
    ("answer", "I understand the risks."),
    ("answer", "Could you say that again please?"),
    ("answer", "Yes, I agree to the terms."),
    ("answer", "My name is John Smith."),
    ("answer", "I live in the city centre."),
    ("answer", "That is all for today, thank you."),
    ("answer", "I will think about it and come back."),
    ("answer", "Good morning, I have a question."),
    ("answer", "Can I pay by card instead?"),
    ("answer", "Where do I sign?"),
)


def reference_words(text: str) -> list[str]:
    return words_of(text)


def phrases_in(text: str) -> set[str]:
    """The PHRASES said in `text` (its words in order, as whole words)."""
    said = f" {' '.join(reference_words(text))} "
    return {p for p in PHRASES if f" {spoken_form(p)} " in said}


def word_errors(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Substitutions + deletions + insertions (Levenshtein distance over words)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def mix_noise(pcm: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White noise over the whole clip at `snr_db` below the speech's level (RMS of the voiced part)."""
    x = pcm.astype(np.float64)
    voiced = x[np.abs(x) > 0.02 * max(1.0, float(np.abs(x).max()))]
    speech_rms = float(np.sqrt(np.mean(voiced ** 2))) if len(voiced) else 1.0
    noise = np.random.default_rng(seed).normal(0, speech_rms / 10 ** (snr_db / 20), len(x))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


def opus_packets(pcm: np.ndarray) -> list[bytes]:
    """48 kHz mono int16 as 20 ms Opus packets (libopus, as a browser sends them)."""
    enc: Any = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = RATE, "mono", "s16"
    enc.bit_rate = 32000
    enc.time_base = fractions.Fraction(1, RATE)
    n = int(RATE * PACKET_S)
    out: list[bytes] = []
    pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % n, np.int16)])
    for i in range(0, len(pcm), n):
        frame = av.AudioFrame.from_ndarray(pcm[i:i + n].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, i, fractions.Fraction(1, RATE)
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


@dataclass
class Clip:
    key: str
    category: str
    text: str
    noisy: bool
    packets: list[bytes]
    audio_s: float
    speech_end_s: float  # where the speech ends in the clip


@dataclass
class ClipResult:
    clip: Clip
    finals: list[AsrResult] = field(default_factory=list)
    heard: set[str] = field(default_factory=set)
    last_final_at: float | None = None  # wall clock (monotonic)
    speech_end_at: float = 0.0


def make_clips(folder: Path, sentences: Sequence[tuple[str, str]]) -> list[Clip]:
    """Each sentence spoken by festival, clean and with noise at SNR_DB; Opus packets."""
    require_tools()
    clips = []
    for n, (category, text) in enumerate(sentences):
        speech = festival_pcm(text, folder, f"s{n:02d}", RATE)  # 0.4 s / 0.6 s of silence around it
        pcm = np.concatenate([np.zeros(int(0.6 * RATE), np.int16), speech, np.zeros(int(TAIL_S * RATE), np.int16)])
        speech_end = (0.6 * RATE + len(speech)) / RATE - 0.6  # festival_pcm padded 0.6 s after the words
        for noisy in (False, True):
            audio = mix_noise(pcm, SNR_DB, seed=n) if noisy else pcm
            clips.append(Clip(f"s{n:02d}{'-noisy' if noisy else ''}", category, text, noisy, opus_packets(audio),
                              len(audio) / RATE, speech_end))
    return clips


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _play(asr: AsrService, clip: Clip) -> ClipResult:
    """One clip through a fresh tap (as a new call's customer track), paced in real time."""
    res = ClipResult(clip)

    async def on_final(result: AsrResult) -> None:
        if result.final:
            res.finals.append(result)
            res.last_final_at = time.monotonic()

    async def on_spot(result: AsrResult) -> None:
        if result.final:
            res.heard |= {w.word for w in result.words}

    stream = asr.stream(on_final)
    spot = asr.spotting_stream(on_spot)

    class Sink:
        def feed(self, pcm: bytes, t: float) -> None:
            stream.feed(pcm, t)
            if spot is not None:
                spot.feed(pcm, t)

        def end(self) -> None:
            stream.end()
            if spot is not None:
                spot.end()

    sink = Sink()
    track = TrackInfo("bench", "customer", "audio", "audio/opus", 48000, 111, 1)
    tap = AudioTap(lambda _track: sink)
    start = time.monotonic()
    res.speech_end_at = start + clip.speech_end_s
    for i, payload in enumerate(clip.packets):
        delay = start + i * PACKET_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tap.on_rtp(track, RtpPacket(payload_type=111, sequence_number=i % 65536,
                                    timestamp=(i * int(RATE * PACKET_S)) % 2**32, ssrc=1, payload=payload))
    await tap.close()
    for s in (stream, spot):
        if s is not None:
            await s.drain()
            await s.close()
    if spot is None:  # no phrase search (vosk): phrases matched in the final lines, as the node does
        text = normalise(" ".join(r.text for r in res.finals))
        res.heard = {spoken_form(p) for p in PHRASES if normalise(p) in text}
    return res


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def score(results: Sequence[ClipResult]) -> dict[str, Any]:
    """WER, phrase recall and false alarms, latency over some clips."""
    errors = words = 0
    want = found = 0
    none_sentences = false_alarms = other_false = 0
    latencies = []
    for r in results:
        ref = reference_words(r.clip.text)
        hyp = [w for f in sorted(r.finals, key=lambda f: f.start) for w in words_of(f.text)]
        errors += word_errors(ref, hyp)
        words += len(ref)
        said = {spoken_form(p) for p in phrases_in(r.clip.text)}
        if said:
            want += len(said)
            found += len(said & r.heard)
            other_false += len(r.heard - said)
        else:
            none_sentences += 1
            false_alarms += len(r.heard)
        if r.last_final_at is not None:
            latencies.append(r.last_final_at - r.speech_end_at)
    return {
        "sentences": len(results), "wer": round(errors / words, 4) if words else None,
        "phrases_said": want, "phrase_recall": round(found / want, 4) if want else None,
        "sentences_without_phrases": none_sentences,
        "false_alarms_per_100": round(100 * false_alarms / none_sentences, 2) if none_sentences else None,
        "wrong_phrase_in_phrase_sentences": other_false,
        "final_after_speech_s_p50": round(statistics.median(latencies), 3) if latencies else None,
        "final_after_speech_s_p95": round(_pct(latencies, 0.95) or 0, 3) if latencies else None,
    }


async def run_engine(config: Config, engine: Engine, clips: Sequence[Clip], streams: int) -> dict[str, Any]:
    rules = [KeywordRule(f"bench:{p}", "suggest", p) for p in PHRASES]
    rss0 = rss_mb()
    asr = AsrService(engine, streams, phrases=spot_phrases(rules, config.asr_kws_threshold),
                     threads=max(2, 2 * streams))
    try:
        await asr.pool.start()
        if asr.spot_pool is not None:
            await asr.spot_pool.start()
        rss_per_stream = (rss_mb() - rss0) / streams
        queue: asyncio.Queue[Clip] = asyncio.Queue()
        for clip in clips:
            queue.put_nowait(clip)
        results: list[ClipResult] = []

        async def worker() -> None:
            while not queue.empty():
                results.append(await _play(asr, queue.get_nowait()))

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(streams)))
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await asr.close()
    audio_s = sum(c.audio_s for c in clips)
    rtf = cpu_s / audio_s
    results.sort(key=lambda r: r.clip.key)
    return {
        "engine": engine.name, "language": engine.language, "phrase_search": asr.spot_pool is not None,
        "streams": streams, "audio_s": round(audio_s, 1), "wall_s": round(wall_s, 1),
        "rtf_cpu": round(rtf, 4), "streams_per_core": round(1 / rtf, 1) if rtf > 0 else None,
        "rss_mb_per_stream": round(rss_per_stream, 1),
        "clean": score([r for r in results if not r.clip.noisy]),
        "noisy": score([r for r in results if r.clip.noisy]),
        "sentences": [{"key": r.clip.key, "text": r.clip.text, "heard": sorted(r.heard),
                       "said": " ".join(f.text for f in sorted(r.finals, key=lambda f: f.start))} for r in results],
    }


def installed_engines(config: Config) -> list[tuple[str, Engine | None, str]]:
    """(name, engine or None, why not) for every engine this install can load, English first."""
    out: list[tuple[str, Engine | None, str]] = []
    for name in ("pocketsphinx", "vosk"):
        cfg = config.with_(asr_engine=name, asr_model_path=config.asr_model_path if name == config.asr_engine else "",
                           asr_language=config.asr_language if name == config.asr_engine else "")
        try:
            engine = load_engine(cfg)
        except (ConfigError, StartupError) as exc:
            out.append((name, None, str(exc)))
            continue
        if not engine.language.startswith("en"):
            out.append((name, None, f"its model is {engine.language}; the bench sentences are English"))
            continue
        out.append((name, engine, ""))
    return out


TARGETS = {"wer_clean": 0.15, "phrase_recall": 0.95, "false_alarms_per_100": 1.0, "rtf_cpu": 0.15,
           "final_after_speech_s_p95": 1.0}


def run_accuracy(config: Config, streams: int = 4, limit: int | None = None) -> dict[str, Any]:
    sentences = SENTENCES[:limit] if limit else SENTENCES
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cloudbank-bench-asr-") as tmp:
        t0 = time.perf_counter()
        clips = make_clips(Path(tmp), sentences)
        synth_s = time.perf_counter() - t0
        engines = []
        for name, engine, why in installed_engines(config):
            if engine is None:
                engines.append({"engine": name, "skipped": why})
                continue
            engines.append(asyncio.run(run_engine(config, engine, clips, streams)))
    return {"bench": "asr-accuracy", "cores": os.cpu_count(), "sentences": len(sentences),
            # Other work on the machine slows the paced streams' finals (not their CPU per audio second).
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "snr_db": SNR_DB, "phrases": list(PHRASES), "synth_s": round(synth_s, 1),
            "targets": TARGETS, "engines": engines}


def print_table(result: dict[str, Any]) -> None:
    print(f"speech accuracy: {result['sentences']} festival sentences, clean and at {result['snr_db']:g} dB SNR, "
          f"through Opus -> tap -> engine, real-time paced; {result['cores']} cores, "
          f"load average {result['load_avg_1m'][0]:g} -> {result['load_avg_1m'][1]:g}")
    cols = ("engine", "audio", "WER", "recall", "FA/100", "RTF", "str/core", "MB/str", "final p50", "final p95")
    print("  " + "".join(f"{c:>11}" for c in cols))
    for e in result["engines"]:
        if "skipped" in e:
            print(f"  {e['engine']:>11}  skipped: {e['skipped']}")
            continue
        for cond in ("clean", "noisy"):
            s = e[cond]

            def f(v: Any, fmt: str) -> str:
                return "-" if v is None else format(v, fmt)

            print("  " + "".join(f"{v:>11}" for v in (
                e["engine"], cond, f(s["wer"], ".1%"), f(s["phrase_recall"], ".1%"),
                f(s["false_alarms_per_100"], ".1f"), f(e["rtf_cpu"], ".3f"), f(e["streams_per_core"], ".1f"),
                f(e["rss_mb_per_stream"], ".0f"), f(s["final_after_speech_s_p50"], ".2f"),
                f(s["final_after_speech_s_p95"], ".2f"))))
    t = result["targets"]
    print(f"  targets: WER <= {t['wer_clean']:.0%} clean, recall >= {t['phrase_recall']:.0%}, "
          f"<= {t['false_alarms_per_100']:g} false alarm per 100, RTF <= {t['rtf_cpu']}, "
          f"final p95 <= {t['final_after_speech_s_p95']} s")
