"""Saving a service refuses a phrase with a word the speech engine cannot hear, naming the word."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.service import KEYS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

WEALTH = {"name": "Wealth fund", "skill": "wealth", "dual_recording": True, "keywords": ["investment"],
          "required_phrases": ["you may lose money", "cooling-off period"], "forbidden_phrases": ["guaranteed return"]}


def _admin(api: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue('a1', 'admin', 'api', 600)}"}


async def test_a_phrase_with_a_word_the_engine_lacks_is_refused_naming_it(aiohttp_client: MakeClient,
                                                                          config: Config) -> None:
    api = await aiohttp_client(create_app(config))  # the default engine: pocketsphinx en-us
    assert (await api.put("/services/wealth", json=WEALTH, headers=_admin(api))).status == 201
    for field, phrase, word in (("required_phrases", "read the prospectuss", "prospectuss"),
                                ("keywords", "계좌", "계좌"),
                                ("forbidden_phrases", "zorblax return", "zorblax")):
        resp = await api.put("/services/wealth", json={**WEALTH, field: [*WEALTH.get(field, []), phrase]},
                             headers=_admin(api))
        assert resp.status == 400, phrase
        body = await resp.json()
        assert f"'{word}'" in body["message"] and "pocketsphinx en-us" in body["message"], body
        assert body["field"] == field
    listed = await (await api.get("/services", headers=_admin(api))).json()
    [wealth] = [s for s in listed["services"] if s["code"] == "wealth"]
    assert wealth["required_phrases"] == WEALTH["required_phrases"]  # nothing refused was stored


async def test_a_vosk_model_without_a_word_list_is_not_checked(aiohttp_client: MakeClient, config: Config) -> None:
    api = await aiohttp_client(create_app(config.with_(asr_engine="vosk")))  # the Korean small model
    resp = await api.put("/services/deposit", json={"name": "Deposit", "skill": "general", "keywords": ["저축"]},
                         headers=_admin(api))
    assert resp.status == 201


def test_every_phrase_of_the_demo_catalogue_can_be_heard_by_the_default_engine() -> None:
    from cloudbank.platform.seed import DEMO_SERVICES
    from cloudbank.video.keywords import unheard_words
    from cloudbank.video.lexicon import load_lexicon

    lexicon = load_lexicon(Config())
    assert lexicon is not None and lexicon.label == "pocketsphinx en-us"
    assert [(svc.code, unheard_words(lexicon, svc.full())) for svc in DEMO_SERVICES
            if unheard_words(lexicon, svc.full())] == []
