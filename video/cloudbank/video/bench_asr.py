"""`cloudbank bench asr [--streams K] [--sentences N] [--json PATH]`: what each installed speech engine
gets right and what it costs (the accuracy run, `bench_accuracy.py`): festival bank sentences, clean and
noisy, through Opus -> tap -> engine; WER, phrase-spotting recall and false alarms, RTF, memory per
stream, streams per core, end of speech to final.

`cloudbank bench asr --throughput [--streams K] [--seconds S] [--grammar]`: vosk's raw cost alone.
Feeds S seconds of espeak-ng Korean speech (16 kHz mono) through warmed vosk recognisers, first one
stream alone (the baseline), then K streams at once, each in its own thread as the video node runs
them, as fast as they go. Reports per stream the real-time factor (CPU seconds and wall seconds per
second of audio) and how many streams one core sustains in real time (1 / CPU real-time factor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

from cloudbank.platform.cli import register_bench
from cloudbank.platform.config import Config
from cloudbank.platform.errors import StartupError
from cloudbank.video.asr import SAMPLE_RATE, VoskRecognizer, default_model_path, load_vosk_model

BENCH_TEXT = "안녕하세요 계좌 확인 부탁드립니다 저축 상품이 얼마인지 알고 싶어요 감사합니다"
GRAMMAR = ["안녕하세요", "계좌", "저축", "확인", "감사합니다", "얼마"]
CHUNK_BYTES = SAMPLE_RATE * 2 // 5  # 0.2 s, as SpeechStream batches


def speech(seconds: float) -> bytes:
    """`seconds` of Korean speech at 16 kHz mono s16 (espeak-ng + sox), the sentence repeated."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise StartupError(f"bench asr needs {tool} to make test speech: apt-get install {tool}")
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), BENCH_TEXT], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav),
                        "pad", "0", "0.5"], check=True)
        with wave.open(str(wav)) as w:
            once = bytes(w.readframes(w.getnframes()))
    need = int(seconds * SAMPLE_RATE) * 2
    return (once * (need // len(once) + 1))[:need]


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _run_stream(rec: VoskRecognizer, pcm: bytes, out: dict[str, float]) -> None:
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    words = 0
    for i in range(0, len(pcm), CHUNK_BYTES):
        result = rec.accept(pcm[i:i + CHUNK_BYTES])
        if result is not None and result.final:
            words += len(result.words)
    final = rec.finish()
    words += len(final.words) if final else 0
    out.update(cpu_s=time.thread_time() - cpu0, wall_s=time.perf_counter() - wall0, words=words)


def run_streams(recs: list[VoskRecognizer], pcm: bytes) -> dict[str, Any]:
    """All recognisers at once, one thread each; per-stream and process CPU."""
    audio_s = len(pcm) / 2 / SAMPLE_RATE
    results: list[dict[str, float]] = [{} for _ in recs]
    threads = [threading.Thread(target=_run_stream, args=(rec, pcm, res))
               for rec, res in zip(recs, results, strict=True)]
    proc0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc_s, wall_s = time.process_time() - proc0, time.perf_counter() - wall0
    for rec in recs:
        rec.reset()
    per_stream = [{"rtf_cpu": round(r["cpu_s"] / audio_s, 4), "rtf_wall": round(r["wall_s"] / audio_s, 4),
                   "words": int(r["words"])} for r in results]
    mean_cpu = sum(s["rtf_cpu"] for s in per_stream) / len(per_stream)
    return {
        "streams": len(recs), "audio_s_per_stream": round(audio_s, 2), "wall_s": round(wall_s, 3),
        "process_cpu_s": round(proc_s, 3),
        "per_stream": per_stream,
        "rtf_cpu_mean": round(mean_cpu, 4),
        "rtf_wall_max": max(s["rtf_wall"] for s in per_stream),
        # Seconds of audio one core turns into text per second: that many streams in real time.
        "streams_per_core": round(1 / mean_cpu, 2) if mean_cpu > 0 else None,
        "all_faster_than_real_time": all(s["rtf_wall"] < 1 for s in per_stream),
    }


def run_bench(config: Config, streams: int, seconds: float, grammar: bool) -> dict[str, Any]:
    model_path = config.asr_model_path or default_model_path()
    t0 = time.perf_counter()
    model = load_vosk_model(model_path)
    load_s = time.perf_counter() - t0
    rss_model = rss_mb()
    words = GRAMMAR if grammar else None
    t0 = time.perf_counter()
    recs = [VoskRecognizer(model, words) for _ in range(max(1, streams))]
    create_s = (time.perf_counter() - t0) / len(recs)
    pcm = speech(seconds)
    warm = speech(min(seconds, 10.0))
    for rec in recs:  # warm every recogniser as the pool does, outside the measurement
        rec.accept(warm)
        rec.finish()
        rec.reset()
    rss_pool = rss_mb()
    baseline = run_streams(recs[:1], pcm)
    concurrent = run_streams(recs, pcm)
    return {
        "bench": "asr", "model": model_path, "grammar": grammar, "cores": os.cpu_count(),
        "model_load_s": round(load_s, 2), "recogniser_create_s": round(create_s, 3),
        "rss_mb_model": round(rss_model), "rss_mb_per_recogniser": round((rss_pool - rss_model) / len(recs)),
        "baseline": baseline, "concurrent": concurrent,
        "streams_per_core": concurrent["streams_per_core"],
    }


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--streams", type=int, default=2, help="streams recognised at once (default 2)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of speech per stream (default 20)")
    p.add_argument("--grammar", action="store_true", help="restrict to a phrase grammar (as exact-word checks do)")
    p.add_argument("--throughput", action="store_true",
                   help="only vosk's raw cost on Korean speech (--seconds, --grammar), not the accuracy run")
    p.add_argument("--sentences", type=int, default=0,
                   help="accuracy run: the first N of the fixed sentences (default all)")


def _run(args: argparse.Namespace, config: Config) -> int:
    if not args.throughput:
        return _run_accuracy(args, config)
    if not 1 <= args.streams <= 64 or not 1 <= args.seconds <= 3600:
        raise StartupError("--streams must be 1-64 and --seconds 1-3600")
    result = run_bench(config, args.streams, args.seconds, args.grammar)
    b, c = result["baseline"], result["concurrent"]
    print(f"vosk {Path(result['model']).name} ({'grammar' if args.grammar else 'free'}), "
          f"{c['audio_s_per_stream']} s of speech per stream, {result['cores']} cores")
    print(f"  model load {result['model_load_s']} s, {result['rss_mb_model']} MB; "
          f"+{result['rss_mb_per_recogniser']} MB per warmed recogniser")
    print(f"  {'run':<14}{'streams':>8}{'RTF cpu':>10}{'RTF wall max':>14}{'streams/core':>14}")
    for name, r in (("baseline", b), ("concurrent", c)):
        print(f"  {name:<14}{r['streams']:>8}{r['rtf_cpu_mean']:>10.3f}{r['rtf_wall_max']:>14.3f}"
              f"{r['streams_per_core']:>14}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    sys.stdout.flush()
    return 0


def _run_accuracy(args: argparse.Namespace, config: Config) -> int:
    from cloudbank.video.bench_accuracy import SENTENCES, print_table, run_accuracy

    if not 1 <= args.streams <= 16 or not 0 <= args.sentences <= len(SENTENCES):
        raise StartupError(f"--streams must be 1-16 and --sentences 0-{len(SENTENCES)}")
    result = run_accuracy(config, streams=args.streams, limit=args.sentences or None)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    sys.stdout.flush()
    return 0


register_bench("asr", "speech engines: accuracy (WER, phrase recall, false alarms) and cost, per installed engine",
               _add_args, _run)
