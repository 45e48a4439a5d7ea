"""The service catalogue: storage, the admin API, the demo seed and new tellers' default skills."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import acd_link
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.seed import seed_demo
from cloudbank.platform.service import AUDIT, ENGINE, KEYS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

WEALTH = {"name": "Wealth fund", "skill": "wealth", "strategy": "skill_level", "ring_timeout_s": 30,
          "wrapup_s": 120, "dual_recording": True, "expected_handle_s": 1800, "keywords": ["fund"],
          "required_phrases": ["risk disclosure"], "forbidden_phrases": ["guaranteed return"],
          "qualified_only": True}


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config))


def _auth(api: Client, role: str, sub: str = "u1") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(sub, role, 'api', 600)}"}


async def test_upsert_get_list_round_trip(api: Client) -> None:
    cat = Catalogue(api.app[ENGINE])
    svc = Service("lost_card", "Lost card", "cards", "fewest_calls", 15, 30, False, 300, ("lost my card",))
    assert await cat.upsert(svc) == (svc, True)
    assert await cat.get("lost_card") == svc
    changed = Service("lost_card", "Lost or stolen card", "cards", keywords=("stolen",))
    assert (await cat.upsert(changed))[1] is False
    assert [s.name for s in await cat.list()] == ["Lost or stolen card"]
    with pytest.raises(Exception, match="no service"):
        await cat.get("nope")


async def test_admin_puts_a_service_and_everyone_reads_it(api: Client) -> None:
    resp = await api.put("/services/wealth", json=WEALTH, headers=_auth(api, "admin"))
    assert resp.status == 201, await resp.text()
    assert (await api.put("/services/wealth", json={**WEALTH, "name": "Funds"},
                          headers=_auth(api, "admin"))).status == 200
    public = (await (await api.get("/services")).json())["services"]
    assert public == [{"code": "wealth", "name": "Funds", "names": {"en": "Funds"}, "skill": "wealth",
                       "dual_recording": True, "expected_handle_s": 1800.0, "keywords": ["fund"], "staffed": False}]
    staff = (await (await api.get("/services", headers=_auth(api, "teller"))).json())["services"]
    assert staff[0]["required_phrases"] == ["risk disclosure"] and staff[0]["strategy"] == "skill_level"
    kiosk = (await (await api.get("/services", headers=_auth(api, "device"))).json())["services"]
    assert "required_phrases" not in kiosk[0]
    # The ACD's queue follows the edit at once.
    spec = await acd_link.router(api.app).queue_spec("wealth")
    assert spec is not None and spec["strategy"] == "skill_level" and float(spec["ring_s"]) == 30
    actions = [r.action for r in await api.app[AUDIT].records(subject="service:wealth")]
    assert actions == ["service.created", "service.updated"]


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/services/x", b"{not json", 400, "not valid JSON"),
    ("/services/x", b'{"name": "X"}', 400, "'skill' is required"),
    ("/services/x", b'{"name": "X", "skill": "s", "colour": 1}', 400, "unknown field 'colour'"),
    ("/services/x", b'{"name": "X", "skill": "s", "ring_timeout_s": "20"}', 400, "must be a number"),
    ("/services/x", b'{"name": "X", "skill": "s", "strategy": "random"}', 400, "must be one of"),
    ("/services/x", b'{"name": "X", "skill": "s", "ring_timeout_s": 0}', 400, "ring_timeout_s"),
    ("/services/x", b'{"name": "X", "skill": "BAD SKILL"}', 400, "skill must be"),
    ("/services/x", b'{"name": "   ", "skill": "s"}', 400, "name must not be empty"),
    ("/services/x", b'{"name": "X", "skill": "s", "keywords": [""]}', 400, "empty phrases"),
    ("/services/x", b'{"name": "X", "skill": "s", "required_phrases": ["a"]}', 400, "dual-recorded"),
    ("/services/x", b'{"name": "' + b"a" * (1024 * 1024) + b'", "skill": "s"}', 413, "too large"),
    ("/services/x", b'{"name": "' + b"a" * 5000 + b'", "skill": "s"}', 400, "longer than"),
    ("/services/..%2Fetc", b'{"name": "X", "skill": "s"}', 400, "service code"),
    ("/services/" + "a" * 65, b'{"name": "X", "skill": "s"}', 400, "service code"),
])
async def test_bad_service_bodies_are_refused_and_change_nothing(
        api: Client, path: str, body: bytes, status: int, needle: str) -> None:
    resp = await api.put(path, data=body, headers={**_auth(api, "admin"), "Content-Type": "application/json"})
    assert resp.status == status, await resp.text()
    assert needle in (await resp.json())["message"]
    assert await Catalogue(api.app[ENGINE]).list() == []


@pytest.mark.parametrize("role", ["teller", "supervisor", "device", "phone"])
async def test_only_admins_edit(api: Client, role: str) -> None:
    resp = await api.put("/services/wealth", json=WEALTH, headers=_auth(api, role))
    assert resp.status == 403
    assert await Catalogue(api.app[ENGINE]).list() == []


async def test_edits_need_a_valid_token(api: Client) -> None:
    assert (await api.put("/services/wealth", json=WEALTH)).status == 401
    bad = {"Authorization": "Bearer forged.token.here"}
    assert (await api.put("/services/wealth", json=WEALTH, headers=bad)).status == 401
    assert (await api.get("/services", headers=bad)).status == 401
    assert (await api.put("/services/wealth", data=b"{}", headers={**_auth(api, "admin"),
                                                                 "Content-Type": "text/plain"})).status == 415


async def test_demo_seed_has_general_and_a_dual_recorded_sale(api: Client) -> None:
    directory = Directory(api.app[ENGINE])
    result = await seed_demo(directory)
    assert result.created
    services = {s.code: s for s in await Catalogue(api.app[ENGINE]).list()}
    assert {"general", "open_account", "lost_card", "transfer", "change_phone", "wealth"} <= set(services)
    wealth = services["wealth"]
    assert wealth.dual_recording and wealth.required_phrases and wealth.forbidden_phrases
    teller = next(u for u in await directory.list_users() if u.role == "teller")
    assert "general" in teller.skills and "wealth" not in teller.skills and "cards" in teller.skills
    # Every demo queue has a teller, and people are told apart by name.
    people = {u.username: u for u in await directory.list_users()}
    assert all(any(s.skill in p.skills for p in people.values()) for s in services.values())
    assert len({p.display_name for p in people.values()}) == len(people)
    # A second run changes nothing, even after an admin edited the catalogue.
    await Catalogue(api.app[ENGINE]).upsert(Service("general", "Ask us anything", "general"))
    assert not (await seed_demo(directory)).created
    assert (await Catalogue(api.app[ENGINE]).get("general")).name == "Ask us anything"


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudbank.platform", *args, "--data", str(data)],
                          capture_output=True, text=True, input="", timeout=120, check=False)


async def test_cli_teller_gets_every_unqualified_skill_unless_told(api: Client, config: Config) -> None:
    from cloudbank.platform.seed import seed_services

    await seed_services(Catalogue(api.app[ENGINE]))
    assert _cli(config.data, "users", "add", "--role", "teller", "--name", "tina").returncode == 0
    assert _cli(config.data, "users", "add", "--role", "teller", "--name", "wendy",
                "--skills", "wealth:3").returncode == 0
    users = {u.username: u for u in await Directory(api.app[ENGINE]).list_users()}
    assert users["tina"].skills == {"general": 1, "accounts": 1, "cards": 1, "payments": 1}
    assert users["wendy"].skills == {"wealth": 3}


async def test_cli_teller_on_an_empty_catalogue_still_gets_general(config: Config) -> None:
    result = _cli(config.data, "users", "add", "--role", "teller", "--name", "tom")
    assert result.returncode == 0, result.stderr
    out = _cli(config.data, "users", "list").stdout
    assert "skills=general:1" in out


async def test_service_names_come_in_the_customers_language(api: Client) -> None:
    # The zh customer screens show the catalogue's Chinese names; a service with none reads English.
    await seed_demo(Directory(api.app[ENGINE]))
    zh = {s["code"]: s for s in (await (await api.get("/services?lang=zh")).json())["services"]}
    assert zh["general"]["name"] == "一般咨询" and zh["general"]["names"] == {"en": "General enquiry", "zh": "一般咨询"}
    assert all(s["name"] != s["names"]["en"] for s in zh.values()), "every demo service has a zh name"
    en = {s["code"]: s["name"] for s in (await (await api.get("/services")).json())["services"]}
    assert en["general"] == "General enquiry"
    # An admin gives a new service its names; one without a zh name falls back to English.
    resp = await api.put("/services/wealth2", json={**WEALTH, "names": {"zh": " 基金 "}}, headers=_auth(api, "admin"))
    assert resp.status == 201 and (await resp.json())["service"]["names"] == {"zh": "基金"}
    await api.put("/services/plain", json={"name": "Plain", "skill": "general"}, headers=_auth(api, "admin"))
    zh = {s["code"]: s["name"] for s in (await (await api.get("/services?lang=zh")).json())["services"]}
    assert zh["wealth2"] == "基金" and zh["plain"] == "Plain"
    for names, needle in (({"zh": " "}, "names.zh must not be empty"), ({"Chinese!": "x"}, "language code")):
        bad = await api.put("/services/plain", json={"name": "Plain", "skill": "general", "names": names},
                            headers=_auth(api, "admin"))
        assert bad.status == 400 and needle in (await bad.json())["message"]
