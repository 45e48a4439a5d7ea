"""Every route of every app, called by every kind of caller, against the access table (access.py).

The whole system is composed as `cloudbank up` composes it (build_root) and its routes are read from
the routers, so a route added without a table entry fails here. Real objects are made first: a call
between kiosk A and teller A (S1), a call between phone customer A and teller B (S2), a ticket
waiting for phone customer B, a push, an authorisation request and a work order in S1. Each route is
then called with those ids in its path by: nobody, kiosk A, phone A, phone B, teller A, teller B, a
supervisor of the calls' queue, a supervisor of another queue, an admin, and a join token of S1.

A kind the table does not list gets 401 (no token) or the table's own 403 (`needs`); a kind it lists
never gets that; the "another" kinds get the object rule's 404 or 403 that the entry's note names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from cloudbank.platform import access
from cloudbank.platform.config import Config
from cloudbank.platform.errors import Forbidden
from cloudbank.platform.identity import Directory
from cloudbank.platform.openapi import body_model
from cloudbank.platform.seed import seed_demo
from cloudbank.platform.server import build_root
from cloudbank.platform.service import ENGINE, KEYS
from cloudbank.platform.tokens import KeyRing
from cloudbank.platform.validation import json_schema
from cloudbank.video.registry import NODE_ID

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
SERVICES = ["platform", "video", "media", "seat", "phone"]
SERVICE = "wealth"  # a demo service with an approved work-order definition
FORM = {"kind": "form", "title": "Open an account", "fields": [{"name": "account_name", "label": "Name"}]}

# What the object rule answers the "another" kinds, by the entry's note (kinds not named: allowed).
OTHERS: dict[str, dict[str, int]] = {
    access.OWN_SESSION: {"teller_other": 404, "phone_other": 404},
    access.TELLER_OF_SESSION: {"teller_other": 404},
    access.CUSTOMER_OF_SESSION: {"phone_other": 404},
    access.VIEWER: {"teller_other": 404, "supervisor_other": 403},
    access.SUPERVISOR_OF_QUEUE: {"supervisor_other": 403},
    access.OWN_TICKET: {"device": 404, "phone": 404},  # the waiting ticket is phone B's
    "a supervisor of the ticket's queue (else 403)": {"supervisor_other": 403},
}
# Ids no object of the calls has (the role check still comes first; an owner may get 404 there).
PLACEHOLDERS = {"offer_id": "o-none", "check_id": "c-none", "which": "face", "name": "front.jpg",
                "item_id": "m-none", "sha256": "0" * 64, "playlist_id": "p-none"}
# Calls that change what later calls find: made after all the others, the call's end last of all.
LATE = re.compile(r"/(end|transfer|wrapup|hold|resume|logout|revoke|unlock|purge|decline|accept|callback|"
                  r"approve|reject|cancel|complete|confirm|reopen|override)$|^/api/authorisations/\{")


def apps(app: web.Application) -> Iterator[web.Application]:
    yield app
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from apps(resource.get_info()["app"])


def every_route(root: web.Application) -> dict[tuple[str, str], Any]:
    """(method, path) -> handler of every REST and WebSocket route of every mounted app, from the routers."""
    return {(route.method, route.resource.canonical): route.handler for app in apps(root)
            for route in app.router.routes()
            if route.method not in ("HEAD", "OPTIONS") and route.resource is not None
            and not isinstance(route.resource, web.StaticResource)}


def sample(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A valid-looking value of `schema`, so a body passes validation and the object rule answers."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return sample(schema["anyOf"][0], components)
    kind = schema.get("type")
    if kind == "object":
        return {name: sample(s, components) for name, s in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    return {"string": "x", "integer": 1, "number": 1.5, "boolean": True}.get(str(kind), "x")


# Bodies a handler checks beyond their model before its object rule (a form's fields, a transfer's target).
BODIES: dict[tuple[str, str], Any] = {("POST", "/api/sessions/{session_id}/push"): FORM,
                                      ("POST", "/api/sessions/{session_id}/transfer"): {"queue": "general"}}


def body_for(key: tuple[str, str], handler: Any) -> Any:
    if key in BODIES:
        return BODIES[key]
    model = body_model(handler)
    return {} if model is None else sample(json_schema(model), {})


@dataclass
class Caller:
    role: str | None  # None: no token
    sub: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> this caller's value


@dataclass
class World:
    client: Client
    keys: KeyRing
    callers: dict[str, Caller]
    ids: dict[str, str]  # path parameter -> value, for every caller

    def headers(self, kind: str) -> dict[str, str]:
        caller = self.callers[kind]
        if caller.role is None:
            return {}
        scope = str(caller.extra.get("scope", "api"))
        extra = {k: v for k, v in caller.extra.items() if k != "scope"}
        # A fresh token per call: logout revokes the token it is sent.
        return {"Authorization": f"Bearer {self.keys.issue(caller.sub, caller.role, scope, 600, **extra)}"}

    async def call(self, kind: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(method, path, json=body, headers=self.headers(kind))
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    async def ok(self, kind: str, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(kind, method, path, body)
        assert status in (200, 201), (method, path, status, data)
        return data


async def start_call(world: World, customer: str, teller: str) -> str:
    await world.ok(teller, "POST", "/api/teller/state", {"state": "ready"})
    await world.ok(customer, "POST", "/api/tickets", {"service": SERVICE})
    offer = (await world.ok(teller, "GET", "/api/teller"))["teller"]["offer_id"]
    assert offer, "the ACD offered the call to the ready teller"
    return str((await world.ok(teller, "POST", f"/api/offers/{offer}/accept"))["session"]["id"])


@pytest.fixture
async def world(aiohttp_client: MakeClient, config: Config) -> World:
    root = build_root(config, SERVICES)
    client = await aiohttp_client(root)
    platform = next(a for a in apps(root) if a.get(KEYS) is not None and "/api/login" in
                    {r.canonical for r in a.router.resources()})
    video = next(a for a in apps(root) if a.get(NODE_ID) is not None)
    directory = Directory(platform[ENGINE])
    await seed_demo(directory)  # the catalogue and its work-order definitions
    branch = "b-access"
    await directory.ensure_branch(branch, "Access branch")
    callers: dict[str, Caller] = {"anonymous": Caller(None)}
    for kind, role, queues in (("teller", "teller", None), ("teller_other", "teller", None),
                               ("supervisor", "supervisor", [SERVICE]), ("supervisor_other", "supervisor", ["general"]),
                               ("admin", "admin", None)):
        user, _ = await directory.add_user(f"access-{kind}", role, skills={"wealth": 1}, queues=queues)
        callers[kind] = Caller(role, user.id, {"name": user.username})
    kiosks = [await directory.enrol_device(await directory.create_enrolment_code(branch), f"kiosk-{n}")
              for n in ("a", "b")]
    callers["device"] = Caller("device", kiosks[0].id, {"branch": branch})
    callers["phone"] = Caller("phone", "cust-access-a", {"phone": "+15550002001"})
    callers["phone_other"] = Caller("phone", "cust-access-b", {"phone": "+15550002002"})
    world = World(client, platform[KEYS], callers, {})

    s1 = await start_call(world, "device", "teller")
    s2 = await start_call(world, "phone", "teller_other")
    callers["join"] = Caller("join", f"device:{kiosks[0].id}", {"scope": f"session:{s1}", "party": "customer",
                                                              "node": video[NODE_ID]})
    ticket = (await world.ok("phone_other", "POST", "/api/tickets", {"service": SERVICE}))["ticket"]["id"]
    push = (await world.ok("teller", "POST", f"/api/sessions/{s1}/push", FORM))["push"]["push_id"]
    authorisation = (await world.ok("teller", "POST", f"/api/sessions/{s1}/authorisations",
                                    {"reason": "over the limit"}))["authorisation"]["id"]
    work_order = (await world.ok("teller", "POST", f"/api/sessions/{s1}/work_orders", {}))["work_order"]["id"]
    world.ids = {"session_id": s1, "session": s1, "ticket_id": ticket, "push_id": push,
                 "authorisation_id": authorisation, "work_order_id": work_order, "code": SERVICE, "version": "1",
                 "user_id": callers["teller_other"].sub, "device_id": kiosks[1].id,
                 **PLACEHOLDERS}
    callers["phone"].ids = callers["phone_other"].ids = {"session_id": s2}  # phone A's call
    return world


def refused_owner(status: int, body: Any) -> bool:
    """The object rule refused the caller the object in the path (not a sub-object named in the body)."""
    message = body.get("message") if isinstance(body, dict) else None
    return status == 403 or (status == 404 and message in ("no such session", "no such ticket", "no such work order"))


def params(path: str) -> list[str]:
    return re.findall(r"{([^}]+)}", path)


def fill(path: str, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in ids, f"no real id for path parameter {name!r} of {path}: add one to the world fixture"
        return ids[name]
    return re.sub(r"{([^}]+)}", one, path)


def role_refused(status: int, body: Any) -> bool:
    """A refusal by the table (no token, or a role it does not list), not by credentials or an object rule."""
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    return (status == 401 and message.startswith("sign in first")) or (status == 403 and "needs" in body)


async def test_every_route_has_an_entry_and_refuses_every_kind_it_does_not_list(world: World) -> None:
    handlers = every_route(world.client.app)
    keys = set(handlers)
    assert keys - set(access.ROUTES) == set(), "routes without an entry in access.ROUTES"
    assert set(access.ROUTES) - keys == set(), "entries for routes that do not exist"
    assert len(keys) > 100
    ordered = sorted(keys, key=lambda k: (bool(LATE.search(k[1])) or k[0] == "DELETE", k[1].endswith("/end"), k))
    wrong: list[str] = []
    checked = 0
    for method, path in ordered:
        rule = access.ROUTES[(method, path)]
        expected_others = OTHERS.get(rule.note, {})
        # The "another" kinds first: an owner's call may change the object (decide, end).
        for kind in sorted(world.callers, key=lambda k: (k not in expected_others, k)):
            caller = world.callers[kind]
            url = fill(path, {**world.ids, **caller.ids})
            body = None if method == "GET" else body_for((method, path), handlers[(method, path)])
            status, body = await world.call(kind, method, URL(url).path, body)
            what = f"{method} {path} as {kind}: {status} {str(body)[:100]}"
            if status >= 500 and status != 503:
                wrong.append(f"server error: {what}")
            elif rule.open:
                if role_refused(status, body):
                    wrong.append(f"open route refused: {what}")
            elif (caller.role or access.ANONYMOUS) not in rule.roles:
                if status != (401 if caller.role is None else 403) or not role_refused(status, body):
                    wrong.append(f"let in: {what}")
            elif status == 401 or role_refused(status, body):
                wrong.append(f"refused the right role: {what}")
            elif kind in expected_others:
                if status != expected_others[kind]:
                    wrong.append(f"object rule ({rule.note}) not applied: {what}")
            elif rule.note in OTHERS and refused_owner(status, body) and not PLACEHOLDERS.keys() & set(params(path)):
                wrong.append(f"object rule ({rule.note}) refused its owner: {what}")
            checked += 1
    assert wrong == [], "\n".join(wrong)
    assert checked == len(keys) * len(world.callers)


async def test_a_route_missing_from_the_table_is_refused(world: World, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delitem(access.ROUTES, ("GET", "/api/me"))
    status, body = await world.call("teller", "GET", "/api/me")
    assert status == Forbidden.status and body["rule"] == "missing"
    assert "GET /api/me has no entry in the access table" in caplog.text


async def test_socket_messages_are_in_the_table(world: World) -> None:
    from cloudbank.platform.events_api import CLIENT_MESSAGES

    assert set(access.EVENTS_MESSAGES) == set(CLIENT_MESSAGES)
    ws = await world.client.ws_connect(f"/api/ws?token={world.headers('teller')['Authorization'][7:]}")
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    await ws.send_json({"type": "ping", "nonce": "n"})
    assert (await ws.receive_json(timeout=5))["type"] == "pong"
    await ws.close()
    # Signalling: the customer may not take a snapshot or talk; the table says so before the handler.
    ws = await world.client.ws_connect(f"/video/ws?token={world.headers('join')['Authorization'][7:]}")
    assert (await ws.receive_json(timeout=5))["type"] == "joined"
    for kind in ("snapshot", "talk"):
        await ws.send_json({"type": kind, "mode": "whisper"} if kind == "talk" else {"type": kind})
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error" and reply["code"] == "not_allowed", reply
    await ws.send_json({"type": "ping", "nonce": "after"})
    assert (await ws.receive_json(timeout=5)) == {"type": "pong", "nonce": "after"}
    await ws.close()
