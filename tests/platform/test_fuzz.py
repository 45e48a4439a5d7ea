"""Fuzzing: schemathesis against the platform's own OpenAPI document, and random and mutated messages
on the events socket and the video signalling socket. Bounded in examples and in time; afterwards
the services still answer healthz and a ping, and nothing was logged as an error."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import ClientSession, WSMsgType, web
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from cloudbank.platform import events_api
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.seed import seed_demo
from cloudbank.platform.server import build_root
from cloudbank.platform.service import ENGINE, KEYS
from cloudbank.platform.tokens import KeyRing
from cloudbank.video import signalling
from cloudbank.video.registry import NODE_ID

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 15
FUZZ_BUDGET_S = 150.0
MESSAGES = 300
SEED = 11


@dataclass
class Running:
    url: str
    keys: KeyRing
    node_id: str
    tokens: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def running(config: Config) -> AsyncIterator[Running]:
    port = free_port()
    config = config.with_(port=port, video_ice_timeout_s=120.0)
    root = build_root(config, ["platform", "video", "media"])
    runner = web.AppRunner(root, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    platform = next(r.get_info()["app"] for r in root.router.resources()
                    if isinstance(r, web.PrefixedSubAppResource) and r.get_info()["prefix"] == "/api")
    video = next(r.get_info()["app"] for r in root.router.resources()
                 if isinstance(r, web.PrefixedSubAppResource) and r.get_info()["prefix"] == "/video")
    directory = Directory(platform[ENGINE])
    await seed_demo(directory)
    keys: KeyRing = platform[KEYS]
    tokens = {}
    for role in ("teller", "supervisor", "admin"):
        user = (await directory.list_users(role=role))[0]
        tokens[role] = keys.issue(user.id, role, "api", 3600, name=user.username)
    try:
        yield Running(f"http://127.0.0.1:{port}", keys, video[NODE_ID], tokens)
    finally:
        await runner.cleanup()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def fuzz_openapi(url: str, token: str, doc: str = "/api/openapi.json", base: str = "/api",
                 min_operations: int = 30) -> list[str]:
    """Every REST operation of the document at `doc` (its paths under `base`), EXAMPLES_PER_OPERATION
    cases each; the failures."""
    schema = schemathesis.openapi.from_url(f"{url}{doc}")
    failures: list[str] = []
    deadline = time.monotonic() + FUZZ_BUDGET_S
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    reached: set[str] = set()
    assert len(operations) > min_operations
    for operation in operations:
        if operation.definition.raw.get("x-websocket") or time.monotonic() > deadline:
            continue

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate])
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            if time.monotonic() > deadline:
                return
            response = case.call_and_validate(base_url=f"{url}{base}", session=session,
                                              headers={"Authorization": f"Bearer {token}"},
                                              checks=[not_a_server_error, response_schema_conformance,
                                                      content_type_conformance])
            # The router's own 404 ("404: Not Found") means the case never reached the handler.
            if response.status_code != 404 or response.json().get("message") != "404: Not Found":
                reached.add(case.operation.path)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:300]}")
    assert time.monotonic() < deadline + 30, "the fuzzing overran its budget"
    # A wrong base path answers every case with the router's 404: the fuzzing would prove nothing.
    assert len(reached) >= 0.8 * len({o.path for o in operations if not o.definition.raw.get("x-websocket")}), \
        f"only {len(reached)} paths reached a handler"
    return failures


async def test_schemathesis_finds_no_server_error_in_the_platform_api(running: Running,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    for role in ("admin", "teller"):  # what an admin may reach, then a teller's own routes
        failures = await asyncio.to_thread(fuzz_openapi, running.url, running.tokens[role])
        assert failures == [], role
    async with ClientSession() as http:
        async with http.get(f"{running.url}/api/healthz") as resp:
            assert resp.status == 200
    assert errors_logged(caplog) == []


async def test_schemathesis_finds_no_server_error_in_the_media_api(running: Running,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    for role in ("admin", "supervisor"):  # everything the API offers, then what a supervisor may see
        failures = await asyncio.to_thread(fuzz_openapi, running.url, running.tokens[role], "/media/api/openapi.json",
                                           "/media", 15)
        assert failures == [], role
    async with ClientSession() as http:
        async with http.get(f"{running.url}/media/healthz") as resp:
            assert resp.status == 200
    assert errors_logged(caplog) == []


def mutations(valid: list[dict[str, Any]], rng: random.Random) -> list[str]:
    """Random and mutated valid messages: fields dropped, retyped, nested, surrogates, junk text."""
    junk: list[Any] = [None, True, 0, -1, 2**64, 1.5, "", "x" * 5000, "\ud800", [], {}, [[[]]], {"a": {"b": {}}}]
    out: list[str] = []
    for _ in range(MESSAGES):
        base = dict(rng.choice(valid))
        roll = rng.random()
        if roll < 0.3 and base:
            base[rng.choice(list(base))] = rng.choice(junk)
        elif roll < 0.45:
            base[rng.choice(["type", "nonce", "sdp", "extra", "candidate", "mode"])] = rng.choice(junk)
        elif roll < 0.55 and base:
            base.pop(rng.choice(list(base)))
        elif roll < 0.65:
            depth = rng.randint(30, 3000)
            out.append('{"type":"ping","nonce":' + "[" * depth + "]" * depth + "}")
            continue
        elif roll < 0.75:
            text = json.dumps(base)
            cut = rng.randint(0, len(text))
            out.append(text[:cut] + rng.choice(["", "}", "\\", '"', "\x00", "\\ud800", "NaN"]) + text[cut:])
            continue
        elif roll < 0.8:
            # Any characters a client can send (UTF-8 cannot carry a lone surrogate; the escape can, above).
            out.append("".join(chr(rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                               for _ in range(rng.randint(1, 40))))
            continue
        out.append(json.dumps(base))
    return out


async def fire(ws: Any, messages: list[str]) -> None:
    """Send each message and read what comes back before the next (every answer is an error or a pong)."""
    for text in messages:
        await ws.send_str(text)
        try:
            msg = await ws.receive(timeout=0.5)
        except TimeoutError:
            continue  # some messages are answered by nothing (an end-of-candidates)
        assert msg.type == WSMsgType.TEXT, (text[:80], msg)
        reply = json.loads(msg.data)
        assert reply["type"] in ("error", "pong", "talk"), (text[:80], reply)


async def test_fuzzed_events_socket_messages_leave_it_answering(running: Running, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    monkeypatch.setattr(events_api, "RATE_PER_S", 10_000.0)  # fuzz the decoding, not the flood control
    monkeypatch.setattr(events_api, "BURST", 10_000)
    messages = mutations([{"type": "ping"}, {"type": "ping", "nonce": "n1"}], random.Random(SEED))
    async with ClientSession() as http:
        async with http.ws_connect(f"{running.url}/api/ws?token={running.tokens['teller']}") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await asyncio.wait_for(fire(ws, messages), 120)
            await ws.send_json({"type": "ping", "nonce": "after"})
            pong = await ws.receive_json(timeout=5)
            assert pong["type"] == "pong" and pong["nonce"] == "after"
        async with http.get(f"{running.url}/api/healthz") as resp:
            assert resp.status == 200
    assert errors_logged(caplog) == []


async def test_fuzzed_signalling_messages_leave_it_answering(running: Running, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    monkeypatch.setattr(signalling, "RATE_PER_S", 10_000.0)
    monkeypatch.setattr(signalling, "BURST", 10_000.0)
    # No valid offer among them: an offer would open a peer connection, which is not what is fuzzed here.
    valid: list[dict[str, Any]] = [
        {"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host",
                                            "sdpMid": "0", "sdpMLineIndex": 0}},
        {"type": "candidate", "candidate": None}, {"type": "talk", "mode": "whisper"}, {"type": "snapshot"},
        {"type": "ping", "nonce": "n1"}, {"type": "offer", "sdp": "v=0"},
    ]
    messages = mutations(valid, random.Random(SEED))
    join = running.keys.issue("cust-fuzz", "join", "session:s-fuzz", 600, party="customer", node=running.node_id)
    async with ClientSession() as http:
        async with http.ws_connect(f"{running.url}/video/ws?token={join}") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "joined"
            await asyncio.wait_for(fire(ws, messages), 120)
            await ws.send_json({"type": "ping", "nonce": "after"})
            assert await ws.receive_json(timeout=5) == {"type": "pong", "nonce": "after"}
        async with http.get(f"{running.url}/video/healthz") as resp:
            assert resp.status == 200
    assert errors_logged(caplog) == []
