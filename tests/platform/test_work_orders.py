"""Work orders (work_orders.py) over the HTTP API, real sockets, real Redis and SQLite: the demo's
fund sale from its seeded definition, pushed to the kiosk, confirmed and signed, authorised by a
supervisor, its dual-recording checklist ticked by the call's keyword events from the right
speaker, completed and wrapped up; and everything that must be refused without changing anything.

Calls start the real way: a kiosk takes a ticket, a ready teller accepts the ACD's offer. The
keyword events are sent as the video node sends them (events.publish_to_session).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import jwt
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.seed import DEMO_DEFINITIONS, DEMO_SERVICES, seed_demo
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, KEYS, REDIS
from cloudbank.platform.service_definitions import Definition
from cloudbank.platform.work_orders import canonical_sha256

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
WEALTH = DEMO_DEFINITIONS["wealth"]


@dataclass
class Person:
    id: str
    headers: dict[str, str]
    client: str


@dataclass
class Call:
    sid: str
    teller: Person
    customer: Person


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    client = await aiohttp_client(create_app(config))
    await seed_demo(Directory(client.app[ENGINE]))  # the demo catalogue and its approved wealth definition
    redis = client.app[REDIS]
    await redis.hset("video:nodes", "node-a", json.dumps({
        "id": "node-a", "url": "http://127.0.0.1:9/node-a/", "calls": 0, "cpu": 0.1, "draining": False,
        "heartbeat_at": 0}))
    await redis.set("video:node:node-a:alive", "1", ex=60)
    return client


def _bearer(api: Client, sub: str, role: str, **extra: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.app[KEYS].issue(sub, role, 'api', 600, **extra)}"}


async def person(api: Client, name: str, role: str = "teller", queues: list[str] | None = None) -> Person:
    skills = {svc.code: 1 for svc in DEMO_SERVICES} if role == "teller" else None
    user, _ = await Directory(api.app[ENGINE]).add_user(name, role, skills=skills, queues=queues)
    return Person(user.id, _bearer(api, user.id, role, name=name), f"user:{user.id}")


async def admin(api: Client, username: str) -> Person:
    user = next(u for u in await Directory(api.app[ENGINE]).list_users(role="admin") if u.username == username)
    return Person(user.id, _bearer(api, user.id, "admin", name=username), f"user:{user.id}")


async def kiosk(api: Client, name: str) -> Person:
    directory = Directory(api.app[ENGINE])
    device = await directory.enrol_device(await directory.create_enrolment_code("demo"), name)
    return Person(device.id, _bearer(api, device.id, "device", branch="demo"), f"device:{device.id}")


async def call(api: Client, teller_name: str = "tina", kiosk_name: str = "kiosk", service: str = "wealth") -> Call:
    teller = await person(api, teller_name)
    customer = await kiosk(api, kiosk_name)
    assert (await api.post("/teller/state", json={"state": "ready"}, headers=teller.headers)).status == 200
    assert (await api.post("/tickets", json={"service": service}, headers=customer.headers)).status == 201
    me = await (await api.get("/teller", headers=teller.headers)).json()
    accepted = await api.post(f"/offers/{me['teller']['offer_id']}/accept", headers=teller.headers)
    assert accepted.status == 200, await accepted.text()
    return Call((await accepted.json())["session"]["id"], teller, customer)


async def post(api: Client, path: str, who: Person, body: Any = None) -> Any:
    return await api.post(path, json=body if body is not None else {}, headers=who.headers)


async def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    return dict(await resp.json())


async def refused(resp: Any, status: int, needle: str = "") -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = dict(await resp.json())
    assert needle.lower() in body["message"].lower(), body
    return body


def sale_values(definition: Definition, above_limit: bool) -> dict[str, str]:
    """Values that fit the definition: an amount above or below its authorisation threshold."""
    amount = definition.authorisation_above + (1000 if above_limit else -1000)
    values = {"amount": f"{amount:g}", "debit_account": "12345678901", "cooling_off_understood": "true"}
    for f in definition.fields:
        if f.kind == "select":
            values[f.name] = f.options[0]
    return values


def signature_data_url() -> str:
    pixels = np.full((60, 200, 3), 255, dtype=np.uint8)
    cv2.line(pixels, (10, 40), (190, 15), (0, 0, 0), 3)
    ok_, buf = cv2.imencode(".png", pixels)
    assert ok_
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


async def pushes_to(api: Client, who: Person) -> list[dict[str, Any]]:
    return [e for _, e in await events.read(api.app[REDIS], who.client) if e["type"] == "push"]


async def get_wo(api: Client, wid: str, who: Person) -> dict[str, Any]:
    return dict((await ok(await api.get(f"/work_orders/{wid}", headers=who.headers)))["work_order"])


async def start(api: Client, c: Call, values: dict[str, str]) -> str:
    body = await ok(await post(api, f"/sessions/{c.sid}/work_orders", c.teller, {"values": values}), 201)
    return str(body["work_order"]["id"])


async def customer_confirms(api: Client, c: Call, changes: dict[str, str] | None = None) -> None:
    """The kiosk answers the work order's latest pushes: the form with its shown values, and signs."""
    sent = await pushes_to(api, c.customer)
    form = [p for p in sent if p["kind"] == "form"][-1]
    values = {f["name"]: f["value"] for f in form["fields"] if f["value"]} | (changes or {})
    await ok(await post(api, f"/sessions/{c.sid}/responses", c.customer,
                        {"push_id": form["push_id"], "answer": "accept", "values": values}))
    sig = [p for p in sent if p["kind"] == "signature_request"][-1]
    await ok(await post(api, f"/sessions/{c.sid}/responses", c.customer,
                        {"push_id": sig["push_id"], "answer": "accept", "signature": signature_data_url()}))


async def say(api: Client, c: Call, speaker: str, phrase: str, at: float) -> None:
    """A keyword event as the video node sends it when the phrase search hears `phrase`."""
    await events.publish_to_session(api.app[REDIS], c.sid, {
        "type": "keyword", "rule": f"wealth:required:{phrase}", "phrase": phrase, "kind": "required",
        "speaker": speaker, "at": at, "end": at + 1.5, "service": "wealth"})


async def say_script(api: Client, c: Call, definition: Definition, skip: str = "") -> None:
    for n, item in enumerate(definition.script):
        if item.id != skip:
            await say(api, c, "teller" if item.kind == "say" else "customer", item.phrase, 10.0 + 5 * n)


async def audit_actions(api: Client, wid: str) -> list[str]:
    return [r.action for r in await api.app[AUDIT].records(subject=f"work_order:{wid}")]


# -- the whole sale -----------------------------------------------------------------------------------

async def test_a_dual_recorded_fund_sale_from_start_to_wrap_up(api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["wealth"])
    values = sale_values(WEALTH, above_limit=True)
    created = await ok(await post(api, f"/sessions/{c.sid}/work_orders", c.teller, {"values": values}), 201)
    wo = created["work_order"]
    assert wo["state"] == "draft" and wo["definition_version"] == 1 and wo["service"] == "wealth"
    assert wo["definition"]["title"] == WEALTH.title
    assert [i["id"] for i in wo["checklist"]] == [i.id for i in WEALTH.script]
    wid = wo["id"]

    sent = await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    assert sent["work_order"]["state"] == "awaiting_customer"
    form = [p for p in await pushes_to(api, c.customer) if p["kind"] == "form"][0]
    assert form["work_order_id"] == wid and form["title"] == WEALTH.title
    assert {f["name"]: f["value"] for f in form["fields"] if f["value"]} == values
    assert [f["name"] for f in form["fields"] if f["confirm"]] == [f.name for f in WEALTH.fields if f.confirm]
    await customer_confirms(api, c)

    wo = await get_wo(api, wid, c.teller)
    assert wo["state"] == "awaiting_authorisation"  # the amount is above the definition's threshold
    confirmation = wo["confirmation"]
    assert confirmation["answer"] == "accept" and confirmation["values"] == values
    assert confirmation["values_shown"]["amount"] == values["amount"]
    assert confirmation["sha256"] == canonical_sha256({"work_order": wid, "service": "wealth",
                                                       "definition_version": 1, "values": values})
    assert wo["signature"]["answer"] == "accept" and len(wo["signature"]["sha256"]) == 64

    # The supervisor sees the request with the work order's values; nothing completes before the grant.
    pending = (await ok(await api.get("/authorisations/pending", headers=sue.headers)))["authorisations"]
    assert pending[0]["work_order_id"] == wid and pending[0]["values"] == values
    await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, "authorisation")
    await ok(await post(api, f"/authorisations/{pending[0]['id']}", sue, {"grant": True, "reason": "known"}))
    wo = await get_wo(api, wid, c.teller)
    assert wo["authorisation"]["state"] == "granted" and wo["authorisation"]["decided_by"] == sue.id

    # The checklist: a teller's phrase said by the customer ticks nothing; one item still missing blocks.
    teller_phrase = next(i for i in WEALTH.script if i.kind == "say")
    await say(api, c, "customer", teller_phrase.phrase, 3.0)
    assert not (await get_wo(api, wid, c.teller))["checklist"][0]["heard"]
    last = WEALTH.script[-1]
    await say_script(api, c, WEALTH, skip=last.id)
    blocked = await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, "checklist")
    assert blocked["missing"] == [last.id]
    await say_script(api, c, WEALTH)
    wo = await get_wo(api, wid, c.teller)
    assert [i["heard"]["at"] for i in wo["checklist"]] == [10.0 + 5 * n for n in range(len(WEALTH.script))]

    done = await ok(await post(api, f"/work_orders/{wid}/complete", c.teller, {"note": "sold"}))
    assert done["work_order"]["state"] == "completed" and done["work_order"]["disposition"]["note"] == "sold"
    actions = await audit_actions(api, wid)
    assert actions[0] == "work_order.created" and actions[-1] == "work_order.completed"
    assert {"work_order.sent", "work_order.confirmed", "work_order.signed", "work_order.authorisation_requested",
            "work_order.authorisation_granted", "work_order.checklist_heard"} <= set(actions)
    assert (await api.app[AUDIT].verify(api.app[CONFIG].data)).ok

    assert (await post(api, f"/sessions/{c.sid}/end", c.teller)).status == 200
    await ok(await post(api, f"/sessions/{c.sid}/wrapup", c.teller, {"disposition": "sold", "service_done": True}))
    listed = await ok(await api.get(f"/sessions/{c.sid}/work_orders", headers=sue.headers))
    assert [w["state"] for w in listed["work_orders"]] == ["completed"]


async def test_below_the_threshold_no_authorisation_and_a_supervisor_override_for_a_missing_item(
        api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["wealth"])
    wid = await start(api, c, sale_values(WEALTH, above_limit=False))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    assert (await get_wo(api, wid, c.teller))["state"] == "awaiting_customer"  # confirmed; no authorisation
    missing = WEALTH.script[0].id
    await say_script(api, c, WEALTH, skip=missing)
    await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, missing)
    # The teller cannot override; a supervisor of another queue cannot; the queue's supervisor can.
    body = {"items": [missing], "reason": "said before the recording started; customer confirmed"}
    await refused(await post(api, f"/work_orders/{wid}/checklist/override", c.teller, body), 403)
    far = await person(api, "fay", "supervisor", queues=["cards"])
    await refused(await post(api, f"/work_orders/{wid}/checklist/override", far, body), 403)
    await refused(await post(api, f"/work_orders/{wid}/checklist/override", sue, {**body, "items": ["nope"]}),
                  400, "nope")
    await refused(await post(api, f"/work_orders/{wid}/checklist/override", sue, {**body, "reason": " "}),
                  400, "reason")
    assert (await get_wo(api, wid, c.teller))["checklist"][0]["override"] is None  # nothing changed
    wo = (await ok(await post(api, f"/work_orders/{wid}/checklist/override", sue, body)))["work_order"]
    assert wo["checklist"][0]["override"]["by"] == sue.id
    assert wo["checklist"][0]["override"]["reason"] == body["reason"]
    records = await api.app[AUDIT].records(subject=f"work_order:{wid}")
    override = [r for r in records if r.action == "work_order.checklist_override"]
    assert override and override[0].actor == sue.id and override[0].details["items"] == [missing]
    await ok(await post(api, f"/work_orders/{wid}/complete", c.teller))


async def test_a_refusal_carries_its_reason_and_only_cancel_or_change_and_ask_again(api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["wealth"])
    wid = await start(api, c, sale_values(WEALTH, above_limit=True))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    first = (await get_wo(api, wid, c.teller))["authorisation"]["id"]
    await ok(await post(api, f"/authorisations/{first}", sue, {"grant": False, "reason": "amount over profile"}))
    result = [e for _, e in await events.read(api.app[REDIS], c.teller.client) if e["type"] == "authorisation.result"]
    assert result[-1]["state"] == "refused" and result[-1]["decision_reason"] == "amount over profile"
    await say_script(api, c, WEALTH)
    await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, "amount over profile")
    await refused(await post(api, f"/work_orders/{wid}/values", c.teller, {"values": {"amount": "200"}}), 409, "draft")
    await refused(await post(api, f"/authorisations/{first}", sue, {"grant": True}), 409, "decided already")

    # Change and ask again: a new request for the new values; the refusal stays on the chain.
    await ok(await post(api, f"/work_orders/{wid}/reopen", c.teller))
    lower = f"{WEALTH.authorisation_above + 500:g}"
    await ok(await post(api, f"/work_orders/{wid}/values", c.teller, {"values": {"amount": lower}}))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    wo = await get_wo(api, wid, c.teller)
    assert wo["state"] == "awaiting_authorisation" and wo["authorisation"]["id"] != first
    await ok(await post(api, f"/authorisations/{wo['authorisation']['id']}", sue, {"grant": True}))
    assert (await ok(await post(api, f"/work_orders/{wid}/complete", c.teller)))["work_order"]["values"]["amount"] \
        == lower
    assert "work_order.authorisation_refused" in await audit_actions(api, wid)


async def test_a_grant_is_not_replayed_onto_changed_values(api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["wealth"])
    wid = await start(api, c, sale_values(WEALTH, above_limit=True))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    granted = (await get_wo(api, wid, c.teller))["authorisation"]["id"]
    await ok(await post(api, f"/authorisations/{granted}", sue, {"grant": True}))
    await say_script(api, c, WEALTH)
    # The teller reopens after the grant and raises the amount: the old grant does not cover it.
    await ok(await post(api, f"/work_orders/{wid}/reopen", c.teller))
    await ok(await post(api, f"/work_orders/{wid}/values", c.teller, {"values": {"amount": "900000"}}))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    wo = await get_wo(api, wid, c.teller)
    assert wo["authorisation"]["id"] != granted and wo["authorisation"]["state"] == "pending"
    await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, "authorisation")
    # Deciding the old request again is refused; a forged supervisor token is refused.
    await refused(await post(api, f"/authorisations/{granted}", sue, {"grant": True}), 409)
    token = sue.headers["Authorization"].removeprefix("Bearer ")
    forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}), "not-the-key-of-this-system-at-all!",
                        headers={"kid": jwt.get_unverified_header(token)["kid"]})
    resp = await api.post(f"/authorisations/{wo['authorisation']['id']}", json={"grant": True},
                          headers={"Authorization": f"Bearer {forged}"})
    assert resp.status == 401
    await refused(await post(api, f"/authorisations/{wo['authorisation']['id']}", c.teller, {"grant": True}), 403)
    after = await get_wo(api, wid, c.teller)
    assert after["state"] == "awaiting_authorisation" and after["authorisation"]["state"] == "pending"


# -- refused, and nothing changed ----------------------------------------------------------------------

async def test_another_teller_cannot_see_change_or_complete_the_work_order(api: Client) -> None:
    c = await call(api)
    wid = await start(api, c, sale_values(WEALTH, above_limit=False))
    otto = await person(api, "otto")
    before = await get_wo(api, wid, c.teller)
    for path, body in ((f"/work_orders/{wid}/complete", {}), (f"/work_orders/{wid}/confirm", {}),
                       (f"/work_orders/{wid}/values", {"values": {"amount": "500"}}),
                       (f"/work_orders/{wid}/cancel", {"reason": "x"})):
        await refused(await post(api, path, otto, body), 404, "no such work order")
    assert (await api.get(f"/work_orders/{wid}", headers=otto.headers)).status == 404
    await refused(await post(api, f"/sessions/{c.sid}/work_orders", otto, {}), 404)
    assert await get_wo(api, wid, c.teller) == before


async def test_a_confirmation_by_someone_else_or_after_the_session_closed_is_refused(api: Client) -> None:
    c = await call(api)
    wid = await start(api, c, sale_values(WEALTH, above_limit=False))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    form = [p for p in await pushes_to(api, c.customer) if p["kind"] == "form"][0]
    answer = {"push_id": form["push_id"], "answer": "accept",
              "values": {f["name"]: f["value"] for f in form["fields"] if f["value"]}}
    stranger = await kiosk(api, "another kiosk")
    await refused(await post(api, f"/sessions/{c.sid}/responses", stranger, answer), 404)
    await refused(await post(api, f"/sessions/{c.sid}/responses", c.teller, answer), 403)
    # Values that do not fit the form are refused and leave it waiting.
    await refused(await post(api, f"/sessions/{c.sid}/responses", c.customer,
                             {**answer, "values": {**answer["values"], "amount": "a lot"}}), 400, "number")
    assert (await get_wo(api, wid, c.teller))["confirmation"] is None
    assert (await post(api, f"/sessions/{c.sid}/end", c.teller)).status == 200
    await refused(await post(api, f"/sessions/{c.sid}/responses", c.customer, answer), 409)
    wo = await get_wo(api, wid, c.teller)
    assert wo["state"] == "awaiting_customer" and wo["confirmation"] is None
    # service_done needs the completed work order; the call cannot be wrapped up as done without it.
    await refused(await post(api, f"/sessions/{c.sid}/wrapup", c.teller,
                             {"disposition": "sold", "service_done": True}), 409, "work order")
    await ok(await post(api, f"/work_orders/{wid}/cancel", c.teller, {"reason": "customer left"}))
    await ok(await post(api, f"/sessions/{c.sid}/wrapup", c.teller, {"disposition": "no_sale", "service_done": False}))


async def test_a_decision_after_the_call_ended_is_refused(api: Client) -> None:
    c = await call(api)
    sue = await person(api, "sue", "supervisor", queues=["wealth"])
    wid = await start(api, c, sale_values(WEALTH, above_limit=True))
    await ok(await post(api, f"/work_orders/{wid}/confirm", c.teller))
    await customer_confirms(api, c)
    aid = (await get_wo(api, wid, c.teller))["authorisation"]["id"]
    assert (await post(api, f"/sessions/{c.sid}/end", c.customer)).status == 200
    await refused(await post(api, f"/authorisations/{aid}", sue, {"grant": True}), 409, "call is over")
    assert (await get_wo(api, wid, c.teller))["authorisation"]["state"] == "pending"
    # Still decidable? No: the request did not become decided by the refused attempt, and stays so.
    await refused(await post(api, f"/authorisations/{aid}", sue, {"grant": False}), 409, "call is over")


async def test_illegal_moves_and_bad_bodies(api: Client) -> None:
    c = await call(api)
    wid = await start(api, c, {})
    # Incomplete or wrong values: the draft is not sent, and nothing is pushed.
    await refused(await post(api, f"/work_orders/{wid}/confirm", c.teller), 400, "required")
    assert await pushes_to(api, c.customer) == []
    for values, needle in (({"amount": "12abc"}, "number"), ({"amount": "1"}, "at least"),
                           ({"fund": "Lottery"}, "one of"), ({"debit_account": "12-34"}, "format"),
                           ({"nosuch": "1"}, "no field")):
        await refused(await post(api, f"/work_orders/{wid}/values", c.teller, {"values": values}), 400, needle)
    assert (await get_wo(api, wid, c.teller))["values"] == {}
    # Illegal moves: 409.
    await refused(await post(api, f"/work_orders/{wid}/complete", c.teller), 409, "draft")
    await refused(await post(api, f"/work_orders/{wid}/reopen", c.teller), 409, "draft")
    await refused(await post(api, f"/sessions/{c.sid}/work_orders", c.teller, {}), 409, "open work order")
    await ok(await post(api, f"/work_orders/{wid}/cancel", c.teller, {"reason": "wrong product"}))
    for action in ("confirm", "complete", "reopen"):
        await refused(await post(api, f"/work_orders/{wid}/{action}", c.teller), 409, "cancelled")
    await refused(await post(api, f"/work_orders/{wid}/cancel", c.teller, {"reason": "again"}), 409)
    # Malformed and oversized bodies, unknown fields, wrong types, unknown ids.
    path = f"/sessions/{c.sid}/work_orders"
    resp = await api.post(path, data="{not json", headers={**c.teller.headers, "Content-Type": "application/json"})
    await refused(resp, 400, "not valid JSON")
    await refused(await api.post(path, data="x", headers=c.teller.headers), 415)
    huge = {"values": {"notes": "x" * (2 * 1024 * 1024)}}
    await refused(await post(api, path, c.teller, huge), 413)
    await refused(await post(api, path, c.teller, {"values": {"notes": "x" * 3000}}), 400, "longer")
    await refused(await post(api, path, c.teller, {"values": {"amount": 5}}), 400, "string")
    await refused(await post(api, path, c.teller, {"values": {}, "state": "completed"}), 400, "unknown field")
    await refused(await post(api, "/work_orders/" + "0" * 32 + "/complete", c.teller), 404)
    await refused(await post(api, "/work_orders/..%2f..%2fetc/complete", c.teller), 404)
    assert (await api.post(f"/work_orders/{wid}/complete")).status == 401
    listed = await ok(await api.get(path, headers=c.teller.headers))
    assert [w["state"] for w in listed["work_orders"]] == ["cancelled"]


# -- definitions: maker-checker ------------------------------------------------------------------------

async def test_a_definition_change_needs_another_admin_and_a_call_keeps_the_version_it_started_with(
        api: Client) -> None:
    maker, checker = await admin(api, "admin1"), await admin(api, "admin2")
    base = "/services/wealth/definitions"
    c = await call(api)  # starts under version 1 (seeded)
    changed = {**asdict(WEALTH), "title": "Fund sale (2027 terms)", "authorisation": "always",
               "authorisation_field": ""}
    proposed = await ok(await post(api, base, maker, {"definition": changed}), 201)
    assert proposed["version"]["version"] == 2 and proposed["version"]["state"] == "pending"
    await refused(await post(api, f"{base}/2/approve", maker), 403, "maker-checker")
    versions = (await ok(await api.get(base, headers=maker.headers)))["versions"]
    assert [v["state"] for v in versions] == ["approved", "pending"]  # nothing changed
    await refused(await post(api, base, checker, {"definition": changed}), 409, "waiting for approval")
    teller = await person(api, "tom")
    await refused(await post(api, base, teller, {"definition": changed}), 403)
    await refused(await post(api, f"{base}/2/approve", teller), 403)
    await ok(await post(api, f"{base}/2/approve", checker))
    versions = (await ok(await api.get(base, headers=maker.headers)))["versions"]
    assert [v["state"] for v in versions] == ["superseded", "approved"]
    assert (await ok(await api.get("/services/wealth/definition", headers=teller.headers)))["version"]["version"] == 2
    # The call that started before the approval still uses version 1.
    wid = await start(api, c, {})
    assert (await get_wo(api, wid, c.teller))["definition_version"] == 1
    later = await call(api, "tess", "kiosk 2")
    wid2 = await start(api, later, {})
    assert (await get_wo(api, wid2, later.teller))["definition"]["title"] == "Fund sale (2027 terms)"
    actions = [r.action for r in await api.app[AUDIT].records(subject="service:wealth")]
    assert actions[-2:] == ["service_definition.proposed", "service_definition.approved"]
    # A rejected proposal changes nothing either.
    await ok(await post(api, base, maker, {"definition": {**changed, "title": "Bad"}}), 201)
    await ok(await post(api, f"{base}/3/reject", maker, {"reason": "typo"}))
    await refused(await post(api, f"{base}/3/approve", checker), 409, "rejected")
    assert (await ok(await api.get("/services/wealth/definition", headers=teller.headers)))["version"]["version"] == 2


async def test_definitions_that_could_not_be_filled_are_refused(api: Client) -> None:
    maker = await admin(api, "admin1")
    base = "/services/wealth/definitions"
    good = asdict(WEALTH)
    fields = good["fields"]
    for broken, needle in (
            ({**good, "fields": [*fields, fields[0]]}, "unique"),
            ({**good, "authorisation_field": "fund"}, "number field"),
            ({**good, "fields": [{**fields[3], "pattern": "[0-9"}]}, "regular expression"),
            ({**good, "fields": [{**fields[0], "options": []}]}, "options"),
            ({**good, "fields": [{**fields[0], "name": "Bad Name"}]}, "field name"),
            ({**good, "script": [{"id": "a", "kind": "say", "phrase": "  "}]}, "phrase"),
            ({**good, "script": [{"id": "a", "kind": "shout", "phrase": "hi"}]}, "one of"),
            ({**good, "surprise": 1}, "unknown field")):
        await refused(await post(api, base, maker, {"definition": broken}), 400, needle)
    await refused(await post(api, "/services/nosuch/definitions", maker, {"definition": good}), 404)
    assert len((await ok(await api.get(base, headers=maker.headers)))["versions"]) == 1


async def test_a_service_without_a_definition_has_no_work_order_and_wraps_up_as_before(api: Client) -> None:
    assert "general" not in DEMO_DEFINITIONS
    assert any(s.code == "general" for s in await Catalogue(api.app[ENGINE]).list())
    c = await call(api, service="general")
    await refused(await post(api, f"/sessions/{c.sid}/work_orders", c.teller, {}), 409, "no approved definition")
    assert (await post(api, f"/sessions/{c.sid}/end", c.teller)).status == 200
    await ok(await post(api, f"/sessions/{c.sid}/wrapup", c.teller, {"disposition": "done", "service_done": True}))


def test_the_demo_scripts_teller_items_are_phrases_the_video_node_spots_from_the_teller() -> None:
    """The video node raises `keyword` events for the catalogue's required phrases, said by the teller:
    the seeded script's `say` items must be among them, or the demo's checklist could never tick."""
    wealth = next(s for s in DEMO_SERVICES if s.code == "wealth")
    assert wealth.dual_recording
    said = {i.phrase for i in WEALTH.script if i.kind == "say"}
    assert said and said <= set(wealth.required_phrases)
