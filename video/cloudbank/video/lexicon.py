"""The speech engine's vocabulary: which words it can hear at all.

A phrase to spot (a service's keyword, required or forbidden phrase) with a word outside the
engine's dictionary could never match, so it is refused when the service is saved, naming the
word. pocketsphinx's vocabulary is its pronunciation dictionary (`*.dict`, ~135,000 words for
en-us, read in ~0.3 s); a vosk model's is `graph/words.txt` when the model ships one (the small
models, the Korean one included, do not: their phrases are not checked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cloudbank.platform.config import Config

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_ALT_PRON = re.compile(r"\(\d+\)$")


def words_of(phrase: str) -> list[str]:
    """The words of a phrase as the engines spell them: lower case, no punctuation ("Cooling-off" ->
    ["cooling", "off"], "don't" stays one word)."""
    return _WORD.findall(phrase.casefold())


def spoken_form(phrase: str) -> str:
    """The phrase as the engine's search is given it and reports it back: its words, one space apart."""
    return " ".join(words_of(phrase))


@dataclass(frozen=True)
class Lexicon:
    """The words one engine and model know."""

    engine: str
    language: str
    words: frozenset[str]

    def unknown(self, phrase: str) -> list[str]:
        """The words of `phrase` this engine cannot hear, in order."""
        return [w for w in words_of(phrase) if w not in self.words]

    @property
    def label(self) -> str:
        return f"{self.engine} {self.language}".strip()


def read_sphinx_dict(path: str) -> frozenset[str]:
    """The headwords of a pocketsphinx dictionary ("to(3) T UW" -> "to")."""
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if head:
                words.add(_ALT_PRON.sub("", head).casefold())
    return frozenset(words)


def load_lexicon(config: Config) -> Lexicon | None:
    """The configured engine's vocabulary, or None when its model has no word list to check against.

    Raises ConfigError (naming the setting) when the model itself cannot be found.
    """
    if config.asr_engine == "pocketsphinx":
        from cloudbank.video.sphinx import PACKAGED_LANGUAGE, SphinxModel

        if config.asr_model_path:
            model = SphinxModel.from_folder(config.asr_model_path, config.asr_language or PACKAGED_LANGUAGE)
        else:
            model = SphinxModel.packaged()
        return Lexicon("pocketsphinx", model.language, read_sphinx_dict(model.dict))
    from cloudbank.video.asr import VOSK_PACKAGED_LANGUAGE, default_model_path

    folder = Path(config.asr_model_path or default_model_path())
    words_txt = folder / "graph" / "words.txt"
    if not words_txt.is_file():
        return None
    words = frozenset(line.split()[0].casefold() for line in words_txt.read_text(encoding="utf-8").splitlines()
                      if line.strip() and not line.startswith(("<", "#")))
    return Lexicon("vosk", config.asr_language or ("" if config.asr_model_path else VOSK_PACKAGED_LANGUAGE), words)
