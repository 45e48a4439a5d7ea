"""Redis goes away for 10 s and comes back (the embedded redis-server, AOF on, stopped and started
again on its folder) while tickets wait and a call runs, media flowing through a video node.

While it is away: REST calls are 503 with Retry-After (not 500, no traceback logged), healthz says
Redis is down, the event sockets tell their clients and close. After: queues, the teller's state
and the session are as they were, every service reconnected by itself (the ACD matches again, the
video node is back in the registry), the clients' event streams resume, and the call's media never
stopped.

Run it inside `unshare -n sh -c 'ip link set lo up; ...'`: every packet stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.redis_server import EmbeddedRedis
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root

pytestmark = pytest.mark.slow

MakeServer = Callable[..., Awaitable[TestServer]]
OUTAGE_S = 10.0
PASSWORD = "teller password 123"
KIOSK_SOURCE, TELLER_SOURCE = 31, 42


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Wait (bounded) for a condition; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stamps(call: Call, source: int) -> list[int]:
    return [counter for src, counter in call.remote.stamps if src == source]


async def test_redis_away_for_10_s_loses_nothing(aiohttp_server: MakeServer, config: Config, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    redis_folder = tmp_path / "redis"
    redis_folder.mkdir()
    own_redis = EmbeddedRedis(redis_folder)
    own_redis.start()
    base = config.with_(redis_url=own_redis.url, ice_addresses=("127.0.0.1",), video_transcribe=False)
    platform = await aiohttp_server(build_root(base, ["platform"]))
    url = str(platform.make_url("")).rstrip("/")
    with socket.socket() as sock:  # the node registers its URL with its port: pick one
        sock.bind(("127.0.0.1", 0))
        video_port = int(sock.getsockname()[1])
    await aiohttp_server(build_root(base.with_(video_node_id="node-v", port=video_port), ["video"]), port=video_port)
    engine = create_engine(base.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    clients: list[PlatformClient] = []
    calls: list[Call] = []
    try:
        # Three kiosks wait; a fourth is in a call with teller1, media flowing both ways.
        kiosks = []
        for i in range(4):
            kiosk = PlatformClient(url)
            await kiosk.enrol(await directory.create_enrolment_code("demo"), f"kiosk-{i}")
            clients.append(kiosk)
            kiosks.append(kiosk)
        await directory.add_user("teller1", "teller", password=PASSWORD, skills={"general": 1})
        await directory.add_user("teller2", "teller", password=PASSWORD, skills={"general": 1})
        teller = PlatformClient(url)
        clients.append(teller)
        teller.token = (await teller.request("POST", "login", {"username": "teller1", "password": PASSWORD}))["token"]
        teller_events = teller.events()
        seen: list[dict[str, Any]] = []

        async def pump() -> None:
            async for event in teller_events:
                seen.append(event)

        pumping = asyncio.create_task(pump())
        await teller_events.wait_connected()
        await teller.request("POST", "teller/state", {"state": "ready"})
        called = await kiosks[3].create_ticket("general")

        async def offered() -> bool:
            return any(e.get("type") == "offer" for e in seen)

        await until(offered, 20, "an offer to teller1")
        offer = next(e for e in seen if e.get("type") == "offer")
        accepted = await teller.request("POST", f"offers/{offer['offer_id']}/accept")
        session_id = str(accepted["session"]["id"])
        customer_grant = await kiosks[3].join_session(session_id)
        teller_call = Call(VideoGrant.from_json(accepted["video"]), synthetic(TELLER_SOURCE, tone_hz=660),
                           ice_addresses=["127.0.0.1"], session_id=session_id)
        kiosk_call = Call(customer_grant, synthetic(KIOSK_SOURCE), ice_addresses=["127.0.0.1"], session_id=session_id)
        calls += [teller_call, kiosk_call]
        await teller_call.join()
        await kiosk_call.join()
        await kiosks[3].request("POST", f"sessions/{session_id}/activate")
        waiting = [await k.create_ticket("general") for k in kiosks[:3]]

        async def flowing() -> bool:
            return len(stamps(teller_call, KIOSK_SOURCE)) >= 20 and len(stamps(kiosk_call, TELLER_SOURCE)) >= 20

        await until(flowing, 30, "stamped frames both ways")
        before = {t["id"]: (await kiosks[i].ticket(t["id"]))["position"] for i, t in enumerate(waiting)}

        # Redis goes away (SIGTERM: it writes its AOF, as on a restart).
        caplog.clear()
        own_redis.stop()
        down_at = time.monotonic()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/tickets/{waiting[0]['id']}",
                                headers={"Authorization": f"Bearer {kiosks[0].token}"}) as resp:
                assert resp.status == 503, await resp.text()
                assert resp.headers["Retry-After"] == "5" and (await resp.json())["error"] == "unavailable"
            async with http.post(f"{url}/api/login", json={"username": "teller2", "password": PASSWORD}) as resp:
                assert resp.status == 503, await resp.text()
            async with http.get(f"{url}/api/healthz") as resp:
                assert resp.status == 503 and "redis" in (await resp.json())["down"]
        frames_at_down = len(stamps(teller_call, KIOSK_SOURCE))

        async def told() -> bool:
            return any(e.get("type") == "error" and e.get("code") == "unavailable" for e in seen)

        await until(told, 10, "the teller's event socket saying the stream is unavailable")
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert len(stamps(teller_call, KIOSK_SOURCE)) > frames_at_down + 50, "media stopped with Redis"
        own_redis.start()
        back_at = time.monotonic()

        # Everything as it was, and every part back by itself.
        async def answering() -> bool:
            try:
                await kiosks[0].ticket(waiting[0]["id"])
                return True
            except Exception:  # noqa: BLE001 - 503 until the pool reconnects
                return False

        rest_back_s = await until(answering, 20, "REST answering again")
        after = {t["id"]: (await kiosks[i].ticket(t["id"]))["position"] for i, t in enumerate(waiting)}
        assert after == before
        session = (await teller.request("GET", f"sessions/{session_id}"))["session"]
        assert session["state"] == "active"
        state = (await teller.request("GET", "teller"))["teller"]
        assert state["state"] == "busy" and state["ticket_id"] == called["id"]

        async def node_back() -> bool:
            try:
                return bool((await teller.request("GET", "healthz")).get("status") == "ok")
            except Exception:  # noqa: BLE001
                return False

        await until(node_back, 20, "platform healthz ok")
        # The event stream resumed: the end of the call reaches the teller's open stream.
        seen_before_end = len(seen)
        await teller.request("POST", f"sessions/{session_id}/end")

        async def ended() -> bool:
            return any(e.get("type") == "session.ended" for e in seen[seen_before_end:])

        events_back_s = await until(ended, 20, "session.ended on the resumed event stream") + (
            time.monotonic() - back_at)
        # The ACD matches again: teller1 wraps up and is offered the first waiting ticket.
        await teller.request("POST", f"sessions/{session_id}/wrapup", {"disposition": "done", "service_done": True})

        async def offered_again() -> bool:
            return any(e.get("type") == "offer" and e.get("ticket_id") == waiting[0]["id"] for e in seen)

        await until(offered_again, 20, "an offer of the first waiting ticket after Redis came back")
        # Nothing crashed: no traceback logged while Redis was away or coming back.
        tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
        assert not tracebacks, [r.getMessage() for r in tracebacks]
        print(f"\nRedis away {OUTAGE_S:.0f} s: REST back {rest_back_s:.1f} s after it returned, the event "
              f"stream {events_back_s:.1f} s; media frames kept flowing "
              f"({len(stamps(teller_call, KIOSK_SOURCE)) - frames_at_down} during the outage)")
        pumping.cancel()
        await teller_events.close()
    finally:
        for c in calls:
            await c.leave()
        for client in clients:
            await client.close()
        await engine.dispose()
        own_redis.stop()
