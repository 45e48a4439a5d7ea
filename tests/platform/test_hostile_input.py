"""Hostile bodies, paths and socket messages get a clear 4xx (or an `error` message), never a 500
and never a traceback in the logs.

The whole system is composed as `cloudbank up` composes it (build_root), and every route of every
app is read from the router, so a route added later is covered without editing this file. Each
route gets JSON nested 10 000 deep, a lone UTF-16 surrogate in every string field of its body
model, a body over 1 MB, a body that is not JSON, JSON under a wrong content type, and a surrogate
or an over-long value in its path parameters and query string: without a token and with a fresh
token of every role.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from yarl import URL

from cloudbank.platform.config import Config
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
SURROGATE = "\ud800"
DEEP = 10_000
DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP
DEEP_ARRAY = "[" * DEEP + "]" * DEEP
BIG = b'{"a":"' + b"x" * (1024 * 1024 + 10) + b'"}'
# A lone surrogate as it arrives in a URL: its UTF-8-like bytes, which are not valid UTF-8.
SURROGATE_IN_URL = "%ED%A0%80"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # a template, "/api/sessions/{session_id}"
    handler: Any


@dataclass
class System:
    client: Client
    keys: KeyRing
    node_id: str
    subjects: dict[str, tuple[str, dict[str, Any]]]  # role -> (sub, extra claims)

    def token(self, role: str) -> str:
        """A fresh token (a route like logout revokes the one it is sent)."""
        sub, extra = self.subjects[role]
        scope = str(extra.get("scope", "api"))
        return self.keys.issue(sub, role, scope, 600, **{k: v for k, v in extra.items() if k != "scope"})


def apps(app: web.Application) -> Iterator[web.Application]:
    yield app
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from apps(resource.get_info()["app"])


def every_route(root: web.Application) -> list[Route]:
    """Every REST and WebSocket route of every mounted app, from the routers themselves."""
    out = []
    for app in apps(root):
        for route in app.router.routes():
            resource = route.resource
            if route.method in ("HEAD", "OPTIONS") or resource is None or isinstance(resource, web.StaticResource):
                continue
            out.append(Route(route.method, resource.canonical, route.handler))
    return out


def static_prefixes(root: web.Application) -> list[str]:
    return [r.canonical for app in apps(root) for r in app.router.resources() if isinstance(r, web.StaticResource)]


def sample(schema: dict[str, Any], components: dict[str, Any], text: str) -> Any:
    """A value of `schema` with `text` in every free string (enums keep a valid value)."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components, text)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return sample(schema["anyOf"][0], components, text)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties")
        if props is None:
            extra = schema.get("additionalProperties")
            return {text: sample(extra, components, text)} if isinstance(extra, dict) else {}
        return {name: sample(s, components, text) for name, s in props.items()}
    if kind == "array":
        return [sample(schema.get("items", {}), components, text)]
    return {"string": text, "integer": 1, "number": 1.5, "boolean": True}.get(str(kind), text)


def body_of(handler: Any, text: str) -> Any:
    model = body_model(handler)
    if model is None:
        return {"name": text, "type": text}
    return sample(json_schema(model), {}, text)


def url_for(path: str, value: str) -> URL:
    filled = re.sub(r"{[^}]+}", value, path)
    return URL(filled, encoded=True)


@pytest.fixture
async def system(aiohttp_client: MakeClient, config: Config) -> System:
    root = build_root(config, SERVICES)
    client = await aiohttp_client(root)
    platform = next(a for a in apps(root) if a.get(KEYS) is not None and "/api/login" in
                    {r.canonical for r in a.router.resources()})
    video = next(a for a in apps(root) if a.get(NODE_ID) is not None)
    directory = Directory(platform[ENGINE])
    subjects: dict[str, tuple[str, dict[str, Any]]] = {}
    # The demo's catalogue, people and kiosk: the routes then reach real records, not only refusals.
    seeded = await seed_demo(directory)
    assert seeded.enrolment_code is not None
    for role in ("teller", "supervisor", "admin"):
        user = (await directory.list_users(role=role))[0]
        subjects[role] = (user.id, {"name": user.username})
    device = await directory.enrol_device(seeded.enrolment_code, "kiosk-1")
    subjects["device"] = (device.id, {"branch": device.branch_id})
    subjects["phone"] = ("cust-hostile", {"phone": "+15550001111"})
    subjects["join"] = ("cust-hostile", {"scope": "session:s-hostile", "party": "customer",
                                         "node": video[NODE_ID]})
    return System(client, platform[KEYS], video[NODE_ID], subjects)


def hostile_requests(route: Route) -> Iterator[tuple[str, URL, bytes, str]]:
    """(what, url, body, content type) for one route."""
    plain = url_for(route.path, "x1")
    yield "deep object", plain, DEEP_OBJECT.encode(), "application/json"
    yield "deep array", plain, DEEP_ARRAY.encode(), "application/json"
    yield "surrogate", plain, json.dumps(body_of(route.handler, SURROGATE)).encode(), "application/json"
    yield "1 MB body", plain, BIG, "application/json"
    yield "not JSON", plain, b"{not json", "application/json"
    yield "wrong type", plain, json.dumps(body_of(route.handler, "ok")).encode(), "text/plain"
    if "{" in route.path:
        yield "surrogate in path", url_for(route.path, SURROGATE_IN_URL), b"", ""
        # Long, but under aiohttp's 8190-byte request line (past it, aiohttp itself answers 400).
        yield "long path parameter", url_for(route.path, "a" * (6000 // route.path.count("{"))), b"", ""
    yield "surrogate in query", plain.with_query(f"q={SURROGATE_IN_URL}&last_id={SURROGATE_IN_URL}"), b"", ""


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]


async def test_every_route_refuses_hostile_bodies_and_paths(system: System,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    routes = every_route(system.client.app)
    assert len(routes) > 100  # platform, video, media, seat and phone
    assert {"/api/login", "/api/devices/enrol", "/api/phone/start", "/media/api/items"} <= {r.path for r in routes}
    server_errors: list[str] = []
    callers = [None, *system.subjects]
    for route in routes:
        for what, url, body, content_type in hostile_requests(route):
            for role in callers:
                headers = {"Content-Type": content_type} if content_type else {}
                if role is not None:
                    headers["Authorization"] = f"Bearer {system.token(role)}"
                resp = await system.client.request(route.method, url, data=body, headers=headers)
                text = await resp.text()
                if resp.status >= 500 and not (resp.status == 503 and "unavailable" in text):
                    server_errors.append(f"{resp.status} {route.method} {route.path} {what} as {role}: {text[:120]}")
                assert "Traceback" not in text, (route.method, route.path, what)
    assert server_errors == []
    assert failures(caplog) == []


async def test_static_folders_refuse_long_and_strange_names(system: System,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    prefixes = static_prefixes(system.client.app)
    assert len(prefixes) >= 6  # static/ and common/ of media, seat and phone
    names = ["a" * 300, "/".join(["b" * 250] * 20), f"{'c' * 255}/x.js", SURROGATE_IN_URL, "%00.js",
             "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd"]
    for prefix in prefixes:
        for name in names:
            resp = await system.client.get(URL(f"{prefix}/{name}", encoded=True))
            assert resp.status in (400, 403, 404), (prefix, name[:40], resp.status)
    assert failures(caplog) == []


async def test_events_socket_answers_hostile_messages_and_stays_open(system: System,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    ws = await system.client.ws_connect(f"/api/ws?token={system.token('teller')}")
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    hostile = [DEEP_OBJECT[:12_000] + "}" * 10, DEEP_ARRAY[:15_000],
               json.dumps({"type": "ping", "nonce": SURROGATE}), json.dumps({"type": SURROGATE}),
               '{"type": "ping", "nonce": NaN}']
    for message in hostile:
        await ws.send_str(message)
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error", (message[:40], reply)
    await ws.send_json({"type": "ping", "nonce": "after"})
    pong = await ws.receive_json(timeout=5)
    assert pong["type"] == "pong" and pong["nonce"] == "after"
    await ws.close()
    assert failures(caplog) == []


async def test_signalling_socket_answers_hostile_messages_and_stays_open(system: System,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    ws = await system.client.ws_connect(f"/video/ws?token={system.token('join')}")
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined"
    hostile = [DEEP_OBJECT[:60_000], DEEP_ARRAY[:60_000], json.dumps({"type": "offer", "sdp": SURROGATE}),
               json.dumps({"type": "candidate", "candidate": {"candidate": SURROGATE}}),
               json.dumps({"type": "talk", "mode": "off", "x": [1e999]})]
    for message in hostile:
        await ws.send_str(message)
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error", (message[:40], reply)
    await ws.send_json({"type": "ping", "nonce": "after"})
    pong = await ws.receive_json(timeout=5)
    assert pong == {"type": "pong", "nonce": "after"}
    await ws.close()
    msg = await ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert failures(caplog) == []
