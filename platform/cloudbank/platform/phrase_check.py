"""A service's phrases are checked against the speech engine's vocabulary when the service is saved.

A keyword, required or forbidden phrase with a word the configured engine's dictionary lacks could
never be heard (a required phrase would stay "missing" however clearly the teller said it), so
`PUT services/<code>` refuses it with a 400 naming the word. The vocabulary is read on the first
save (`video/lexicon.py`; ~0.3 s for pocketsphinx en-us) and kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.errors import BadRequest

if TYPE_CHECKING:
    from cloudbank.video.lexicon import Lexicon


class SpeechVocabulary:
    """The configured engine's `Lexicon`, loaded once on first use (None: nothing to check against)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lexicon: Lexicon | None = None
        self._loaded = False
        self._lock = asyncio.Lock()

    async def get(self) -> Lexicon | None:
        async with self._lock:
            if not self._loaded:
                from cloudbank.video.lexicon import load_lexicon

                self._lexicon = await asyncio.to_thread(load_lexicon, self.config)
                self._loaded = True
        return self._lexicon


VOCABULARY = web.AppKey("speech_vocabulary", SpeechVocabulary)


async def _lexicon(app: web.Application) -> Lexicon | None:
    vocabulary = app.get(VOCABULARY)
    return await vocabulary.get() if vocabulary is not None else None


def _unheard(lexicon: Lexicon, field: str, phrase: str, words: list[str]) -> BadRequest:
    listed = ", ".join(f"'{w}'" for w in words)
    return BadRequest(f"{field}: the phrase '{phrase}' has {listed}, which the speech engine "
                      f"({lexicon.label}) does not know, so it could never be heard; reword it", field=field)


async def check_phrases(app: web.Application, service: Mapping[str, Any]) -> None:
    """400 naming the first word of the service's phrases that the speech engine cannot hear."""
    lexicon = await _lexicon(app)
    if lexicon is None:
        return
    from cloudbank.video.keywords import unheard_words

    for field, phrase, words in unheard_words(lexicon, service):
        raise _unheard(lexicon, field, phrase, words)


async def check_phrase_fields(app: web.Application, phrases: Iterable[tuple[str, str]]) -> None:
    """The same for (field, phrase) pairs, e.g. a service definition's script items and keywords:
    400 with `field` set to the pair's field for the first phrase the speech engine cannot hear."""
    lexicon = await _lexicon(app)
    if lexicon is None:
        return
    for field, phrase in phrases:
        unknown = lexicon.unknown(phrase)
        if unknown:
            raise _unheard(lexicon, field, phrase, unknown)
