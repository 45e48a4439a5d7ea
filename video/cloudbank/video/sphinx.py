"""The pocketsphinx engine behind the `Recognizer` seam: US English out of the box.

The `pocketsphinx` wheel carries its US-English acoustic model, language model and dictionary
(`pocketsphinx/model/en-us/`), so nothing is fetched at run time. A bank may point `asr_model_path`
at another pocketsphinx model folder laid out the same way: one acoustic-model folder (with `mdef`),
one language model (`*.lm.bin` or `*.lm`) and one dictionary (`*.dict`).

Free decoding has no endpointing of its own: the audio tap's voice detector ends each utterance,
and `finish()` gives its final with word times (pocketsphinx counts 100 frames a second).

Phrase spotting is its own search (`SphinxSpotter`, pocketsphinx's keyphrase search, ~27 MB and
~0.03 s of CPU per second of audio): it runs beside free decoding on the same audio and reports each
phrase it heard with its time, instead of string matching on a noisy free transcript.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudbank.platform.errors import ConfigError
from cloudbank.video.asr import SAMPLE_RATE, AsrResult, SpotPhrase, Word
from cloudbank.video.lexicon import Lexicon, read_sphinx_dict, spoken_form

log = logging.getLogger(__name__)

FRAMES_PER_S = 100
PACKAGED_LANGUAGE = "en-us"
_ALT_PRON = re.compile(r"\(\d+\)$")


def _import() -> Any:
    try:
        import pocketsphinx
    except ImportError:  # pragma: no cover - a main dependency; guard for slim installs
        raise ConfigError("asr_engine", "pocketsphinx", "the pocketsphinx package is missing: "
                                                       "pip install pocketsphinx") from None
    return pocketsphinx


@dataclass(frozen=True)
class SphinxModel:
    """The three files of a pocketsphinx model."""

    hmm: str  # acoustic model folder
    lm: str  # language model
    dict: str  # pronunciation dictionary
    language: str

    @classmethod
    def packaged(cls) -> SphinxModel:
        """The US-English model inside the pocketsphinx wheel."""
        return cls.from_folder(_import().get_model_path(PACKAGED_LANGUAGE), PACKAGED_LANGUAGE)

    @classmethod
    def from_folder(cls, path: str, language: str) -> SphinxModel:
        """Find the acoustic model, language model and dictionary in `path`; ConfigError if one is missing."""
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigError("asr_model_path", path, "not a folder (a pocketsphinx model folder holds an "
                                                      "acoustic model folder, a *.lm.bin and a *.dict)")
        hmms = sorted(p for p in folder.iterdir() if (p / "mdef").is_file())
        lms = sorted(p for p in folder.iterdir()  # a phone-loop model (en-us-phone.lm.bin) is not one
                     if p.name.endswith((".lm.bin", ".lm", ".lm.dmp")) and "-phone." not in p.name)
        dicts = sorted(folder.glob("*.dict"))
        for what, found in (("an acoustic model folder (with mdef)", hmms), ("a language model (*.lm.bin)", lms),
                            ("a dictionary (*.dict)", dicts)):
            if len(found) != 1:
                raise ConfigError("asr_model_path", path, f"a pocketsphinx model folder needs exactly one {what}; "
                                                          f"found {len(found)}")
        return cls(str(hmms[0]), str(lms[0]), str(dicts[0]), language)


def _word(raw: str) -> str | None:
    """A dictionary word without its pronunciation variant ("to(3)" -> "to"); None for fillers."""
    if raw.startswith(("<", "[", "+")):
        return None  # <s>, </s>, <sil>, [NOISE], ++BREATH++
    return _ALT_PRON.sub("", raw)


class SphinxRecognizer:
    """A `Recognizer` on one pocketsphinx Decoder (~90 MB with the full language model).

    `grammar`: only these phrases (a JSGF alternation) instead of the language model; ~27 MB.
    """

    def __init__(self, model: SphinxModel, grammar: Sequence[str] | None = None) -> None:
        ps = _import()
        common: dict[str, Any] = {"hmm": model.hmm, "dict": model.dict, "samprate": SAMPLE_RATE,
                                  "loglevel": "FATAL"}
        if grammar:
            self._decoder = ps.Decoder(lm=None, **common)
            alternatives = " | ".join(" ".join(p.lower().split()) for p in grammar)
            self._decoder.add_jsgf_string("phrases", f"#JSGF V1.0;\ngrammar phrases;\n"
                                                     f"public <phrase> = ( {alternatives} )+;\n")
            self._decoder.activate_search("phrases")
        else:
            self._decoder = ps.Decoder(lm=model.lm, **common)
        self._in_utt = False
        self._fed = 0  # samples of this utterance
        self._partial = ""

    def _start(self) -> None:
        if not self._in_utt:
            self._decoder.start_utt()
            self._in_utt = True

    def accept(self, pcm: bytes) -> AsrResult | None:
        self._start()
        self._fed += len(pcm) // 2
        self._decoder.process_raw(pcm, False, False)
        hyp = self._decoder.hyp()
        partial = hyp.hypstr.strip() if hyp is not None else ""
        if partial and partial != self._partial:
            self._partial = partial
            return AsrResult(partial, False, 0.0, self._fed / SAMPLE_RATE)
        return None

    def finish(self) -> AsrResult | None:
        if not self._in_utt:
            return None
        self._decoder.end_utt()
        self._in_utt = False
        self._partial = ""
        words = []
        for seg in self._decoder.seg() or ():
            text = _word(seg.word)
            if text is None:
                continue
            words.append(Word(text, seg.start_frame / FRAMES_PER_S, (seg.end_frame + 1) / FRAMES_PER_S,
                              min(1.0, max(0.0, float(seg.prob)))))
        if not words:
            return None
        return AsrResult(" ".join(w.word for w in words), True, words[0].start, words[-1].end, tuple(words))

    def reset(self) -> None:
        if self._in_utt:
            self._decoder.end_utt()
            self._in_utt = False
        self._fed = 0
        self._partial = ""


class SphinxSpotter:
    """A `Recognizer` that only spots phrases (pocketsphinx's keyphrase search on its own Decoder).

    `accept` returns nothing; `finish` returns the utterance's hits as one final result whose
    "words" are the phrases heard (each with its start, end and score), text the phrases joined by
    " | ". Thresholds are per phrase: lower hears more (see asr_kws_threshold and `spot_phrases`).
    """

    def __init__(self, model: SphinxModel, phrases: Sequence[SpotPhrase]) -> None:
        ps = _import()
        lines = "".join(f"{text} /{threshold:g}/\n" for text, threshold in phrases)
        fd, path = tempfile.mkstemp(prefix="cloudbank-kws-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(lines)
            self._decoder = ps.Decoder(hmm=model.hmm, dict=model.dict, lm=None, kws=path, samprate=SAMPLE_RATE,
                                       loglevel="FATAL")
        finally:
            os.unlink(path)  # read at creation
        self._in_utt = False

    def accept(self, pcm: bytes) -> AsrResult | None:
        if not self._in_utt:
            self._decoder.start_utt()
            self._in_utt = True
        self._decoder.process_raw(pcm, False, False)
        return None

    def finish(self) -> AsrResult | None:
        if not self._in_utt:
            return None
        self._decoder.end_utt()
        self._in_utt = False
        hits = tuple(Word(seg.word.strip(), seg.start_frame / FRAMES_PER_S, (seg.end_frame + 1) / FRAMES_PER_S,
                          min(1.0, max(0.0, float(seg.prob)))) for seg in self._decoder.seg() or ())
        if not hits:
            return None
        return AsrResult(" | ".join(h.word for h in hits), True, hits[0].start, hits[-1].end, hits)

    def reset(self) -> None:
        if self._in_utt:
            self._decoder.end_utt()
            self._in_utt = False


class SphinxEngine:
    """An `Engine`: the model's files, read once; each recogniser is its own Decoder."""

    name = "pocketsphinx"

    def __init__(self, model: SphinxModel) -> None:
        self.model = model
        self.language = model.language
        self._lexicon: Lexicon | None = None

    @property
    def lexicon(self) -> Lexicon:
        """The dictionary's words (read on first use)."""
        if self._lexicon is None:
            self._lexicon = Lexicon(self.name, self.language, read_sphinx_dict(self.model.dict))
        return self._lexicon

    def recognizer(self, grammar: Sequence[str] | None = None) -> SphinxRecognizer:
        return SphinxRecognizer(self.model, grammar)

    def spottable(self, phrases: Sequence[SpotPhrase]) -> list[SpotPhrase]:
        """`phrases` in their spoken form, once each; those with a word the dictionary lacks are left out
        with a warning (the catalogue refuses them when a service is saved)."""
        usable: dict[str, float] = {}
        for text, threshold in phrases:
            unknown = self.lexicon.unknown(text)
            if unknown:
                log.warning("phrase %r cannot be spotted: %s not in the %s dictionary", text,
                            ", ".join(unknown), self.lexicon.label)
            elif spoken_form(text):
                form = spoken_form(text)
                usable[form] = min(threshold, usable.get(form, threshold))
        return list(usable.items())

    def spotter(self, phrases: Sequence[SpotPhrase]) -> SphinxSpotter:
        return SphinxSpotter(self.model, phrases)


def load_sphinx_engine(path: str, language: str) -> SphinxEngine:
    """The packaged US-English model, or a bank's own model folder at `path`."""
    if path:
        return SphinxEngine(SphinxModel.from_folder(path, language or PACKAGED_LANGUAGE))
    if language not in ("", PACKAGED_LANGUAGE):
        raise ConfigError("asr_language", language, f"pocketsphinx ships only {PACKAGED_LANGUAGE}: set asr_model_path "
                                                    f"to a pocketsphinx model folder for {language}, or use "
                                                    "asr_engine=vosk with a vosk model")
    return SphinxEngine(SphinxModel.packaged())
