"""No secret in clear in the logs or the data folder after a scripted day of `cloudbank up`.

The day runs in this process on the embedded default (its Redis, AOF on, under the data folder; the
SQLite file there too), served by `server.serve` exactly as `cloudbank up` serves it: people sign in
(one mistypes), a kiosk enrols with its one-time code, a phone customer signs in with a one-time
code, tokens are used on REST and in the query string of the events socket, a call is offered and
accepted (join tokens), everyone signs out. Every log record at DEBUG (cloudbank, aiohttp and its
access log, everything else) and every file under the data folder is then searched for each
password, token, one-time code and enrolment code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloudbank.platform.cli import _seed
from cloudbank.platform.config import Config
from cloudbank.platform.redis_server import EmbeddedRedis
from cloudbank.platform.server import prepare_database, serve

pytestmark = [pytest.mark.timeout(120)]

# The demo sender's outbox is the demo's stand-in for an SMS: the person trying the demo reads their
# code there, so the codes are in it by design (phone_auth.FileOtpSender). It is the one file skipped.
DEMO_OUTBOX = "otp.log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Day:
    """The scripted day against a running server; remembers every secret it sees."""

    def __init__(self, http: aiohttp.ClientSession, base: str, data: Path) -> None:
        self.http, self.base, self.data = http, base, data
        self.secrets: dict[str, str] = {}  # the secret -> what it is (for the failure message)

    def keep(self, what: str, secret: str) -> str:
        assert secret, what
        self.secrets[secret] = what
        return secret

    async def call(self, method: str, path: str, token: str = "", status: int = 200, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, f"{self.base}/api/{path}", headers=headers, **kw) as resp:
            assert resp.status == status, (method, path, resp.status, await resp.text())
            return await resp.json()

    async def login(self, username: str, password: str) -> str:
        body = await self.call("POST", "login", json={"username": username, "password": password})
        return self.keep(f"{username}'s API token", body["token"])

    async def events(self, token: str, until: str) -> dict[str, Any]:
        """Open the events socket with the token in the URL (as browsers must) and read until `until`."""
        # From the stream's start (last_id 0-0): what was published before the socket opened counts too.
        url = f"{self.base}/api/ws?token={token}&last_id=0-0"
        async with self.http.ws_connect(url, origin=self.base) as ws:
            for _ in range(50):
                msg = await asyncio.wait_for(ws.receive_json(), 10)
                if msg.get("type") == until:
                    return dict(msg)
        raise AssertionError(f"no {until} event")

    async def phone_code(self, phone: str) -> str:
        """The code the demo sender wrote to its outbox for `phone` (the newest line)."""
        lines = [ln for ln in (self.data / DEMO_OUTBOX).read_text().splitlines() if f" {phone} " in ln]
        return self.keep(f"one-time code for {phone}", lines[-1].split()[-1])


async def scripted_day(day: Day, accounts: list[tuple[str, str, str]], enrolment_code: str) -> None:
    for role, username, password in accounts:
        day.keep(f"{role} {username}'s password", password)
    day.keep("the kiosk's enrolment code", enrolment_code)
    passwords = {username: password for _, username, password in accounts}

    # Sign-ins, one mistyped first (a near miss of the real password, which must not be kept either).
    near_miss = day.keep("a mistyped password", passwords["teller1"] + "x")
    await day.call("POST", "login", json={"username": "teller1", "password": near_miss}, status=401)
    teller = await day.login("teller1", passwords["teller1"])
    supervisor = await day.login("supervisor1", passwords["supervisor1"])
    admin = await day.login("admin1", passwords["admin1"])
    for token in (teller, supervisor, admin):
        await day.call("GET", "me", token)
    await day.call("GET", "devices", admin)

    # A kiosk enrols once with its code, and beats.
    enrolled = await day.call("POST", "devices/enrol", status=201, json={"code": enrolment_code, "name": "kiosk 1"})
    kiosk = day.keep("the kiosk's device token", enrolled["token"])
    await day.call("POST", "devices/heartbeat", kiosk, json={
        "online": True, "camera_ok": True, "microphone_ok": True, "peripherals_ok": True, "app_version": "1"})

    # A phone customer signs in with a one-time code (written two ways: one number).
    challenge = await day.call("POST", "phone/start", json={"phone": "+1 (555) 123-4567"})
    code = await day.phone_code("+15551234567")
    verified = await day.call("POST", "phone/verify", json={"challenge_id": challenge["challenge_id"], "code": code})
    phone = day.keep("the phone customer's token", verified["token"])
    await day.call("POST", "phone/verify", status=401, json={"challenge_id": challenge["challenge_id"], "code": code})
    await day.call("GET", "me", phone)

    # The events socket takes its token in the URL; a call is offered, accepted, joined and ended.
    await day.events(teller, "hello")
    ticket = (await day.call("POST", "tickets", kiosk, status=201, json={"service": "general"}))["ticket"]
    await day.call("POST", "teller/state", teller, json={"state": "ready"})
    offer = await day.events(teller, "offer")
    assert offer["ticket_id"] == ticket["id"]
    accepted = await day.call("POST", f"offers/{offer['offer_id']}/accept", teller)
    day.keep("the teller's join token", accepted["video"]["token"])
    session_id = accepted["session"]["id"]
    # The customer learns of the call on its event stream (kept in Redis), then joins for its token.
    started = await day.events(kiosk, "session.started")
    assert started["session"]["id"] == session_id and "video" not in started
    joined = await day.call("POST", f"sessions/{session_id}/join", kiosk)
    day.keep("the kiosk's join token", joined["video"]["token"])
    await day.call("POST", f"sessions/{session_id}/end", teller)

    for token in (teller, supervisor, admin, kiosk, phone):
        await day.call("POST", "logout", token)
    await day.call("GET", "me", teller, status=401)


def _found(secret: str, text: bytes) -> bool:
    # A 6-digit code could occur inside any longer number (a timestamp): only a whole number counts.
    if re.fullmatch(r"[0-9]{6}", secret):
        return re.search(rb"(?<![0-9])" + secret.encode() + rb"(?![0-9])", text) is not None
    return secret.encode() in text


async def test_a_scripted_day_leaves_no_secret_in_clear(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root: cloudbank.*, aiohttp.access/.server/.web, redis, ...
    for name in ("cloudbank", "aiohttp", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    data = tmp_path / "data"
    config = Config(data=data, port=free_port(), video_transcribe=False)
    embedded = EmbeddedRedis(data / "redis")
    config = config.with_(redis_url=await asyncio.to_thread(embedded.start))
    try:
        await prepare_database(config)
        seeded = await _seed(config)
        ready = asyncio.Event()

        async def on_ready(_config: Config) -> None:
            ready.set()

        server = asyncio.create_task(serve(config, ["platform", "video", "media", "seat", "phone"], on_ready))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            async with aiohttp.ClientSession() as http:
                day = Day(http, config.base_url, data)
                await scripted_day(day, seeded.accounts, seeded.enrolment_code)
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
    finally:
        await asyncio.to_thread(embedded.stop)  # SIGTERM: redis-server writes out its AOF

    assert len(day.secrets) >= 12
    # What was logged, both as formatted and as the records' parts (a message's args, a traceback).
    logged = "\n".join([caplog.text, *(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)])
    assert "for the demo only" in logged  # the capture works: the demo sender's warning at start is in it
    in_logs = [what for secret, what in day.secrets.items() if _found(secret, logged.encode())]
    files = [p for p in data.rglob("*") if p.is_file() and p.relative_to(data).as_posix() != DEMO_OUTBOX]
    assert any(p.suffix == ".sqlite3" for p in files) and any("appendonly" in str(p) for p in files), files
    in_files = [(what, str(p.relative_to(data))) for p in files
                for secret, what in day.secrets.items() if _found(secret, p.read_bytes())]
    assert in_logs == [] and in_files == [], (in_logs, in_files)
