"""Proposing a service definition refuses a script phrase or keyword the speech engine cannot hear,
naming the word and the item (a disclosure that could never be ticked); nothing is stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.seed import DEMO_DEFINITIONS
from cloudbank.platform.service import KEYS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
SERVICE = {"name": "Wealth fund", "skill": "wealth", "dual_recording": True, "keywords": ["investment"]}


def _admin(api: Client, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(who, 'admin', 'api', 600)}"}


async def test_a_script_phrase_or_keyword_with_a_word_the_engine_lacks_is_refused(aiohttp_client: MakeClient,
                                                                                  config: Config) -> None:
    api = await aiohttp_client(create_app(config))  # the default engine: pocketsphinx en-us
    assert (await api.put("/services/wealth", json=SERVICE, headers=_admin(api, "a1"))).status == 201
    good = asdict(DEMO_DEFINITIONS["wealth"])
    bad_script = [*good["script"], {"id": "prospectus", "kind": "say", "phrase": "read the prospectuss"}]
    for definition, field, word in (({**good, "script": bad_script}, "definition.script.prospectus", "prospectuss"),
                                    ({**good, "keywords": ["fund", "zorblax"]}, "definition.keywords", "zorblax")):
        resp = await api.post("/services/wealth/definitions", json={"definition": definition},
                              headers=_admin(api, "a1"))
        assert resp.status == 400, await resp.text()
        body = await resp.json()
        assert f"'{word}'" in body["message"] and "pocketsphinx en-us" in body["message"], body
        assert body["field"] == field
    listed = await (await api.get("/services/wealth/definitions", headers=_admin(api, "a1"))).json()
    assert listed["versions"] == []  # nothing refused was stored
    resp = await api.post("/services/wealth/definitions", json={"definition": good}, headers=_admin(api, "a1"))
    assert resp.status == 201, await resp.text()
