"""A video node dies mid-call and the call goes on, end to end.

One Redis, one database, a platform app and two video nodes on their own ports: node A runs in its
own process (`cloudbank video`) so it can be killed abruptly (SIGKILL: no drain, no deregistering,
its sockets simply vanish); node B runs in the test's process. A kiosk (the SDK) and a teller (the
SDK too) are in a call on node A with pixel-stamped video flowing both ways. Node A is killed; its
heartbeat key expires, node B's sweep publishes `node.down`, the platform moves the session to
node B and sends both parties `video.rejoin`; the SDK (`Call.handle_event`) reconnects there and
stamped frames flow again both ways. The session row names node B, and the recording goes on in
the same folder without overwriting what node A left.

Run it inside `unshare -n sh -c 'ip link set lo up; ...'`: every packet stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.media_sources import MediaSources, synthetic
from cloudbank.platform.audit import AuditChain, file_sha256
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root
from cloudbank.video.recorder import recording_folder

pytestmark = pytest.mark.slow

MakeServer = Callable[..., Awaitable[TestServer]]
KIOSK_SOURCE, TELLER_SOURCE = 31, 42
TELLER_PASSWORD = "teller password 123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (bounded) for a condition the code under test makes true."""
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a test polls a plain predicate
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def until_async(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    async def poll() -> None:
        while not await predicate():  # noqa: ASYNC110 - polls Redis, bounded by the timeout
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def _from(call: Call, source: int) -> list[int]:
    return [counter for src, counter in call.remote.stamps if src == source]


@dataclass
class Party:
    """A platform client with its events stream; video.rejoin goes to its call (the SDK's job)."""

    client: PlatformClient
    events: list[dict[str, Any]] = field(default_factory=list)
    call: Call | None = None
    task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        stream = self.client.events()

        async def pump() -> None:
            async for event in stream:
                self.events.append(event)
                if self.call is not None:
                    await self.call.handle_event(event)

        self.task = asyncio.create_task(pump())
        await stream.wait_connected()
        self._stream = stream

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        if self.call is not None:
            await self.call.leave()
        if self.task is not None:
            await self._stream.close()
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.client.close()


@dataclass
class Cluster:
    config: Config
    platform_url: str
    redis: redis.asyncio.Redis
    directory: Directory
    node_a: asyncio.subprocess.Process
    node_a_port: int
    start_node_b: Callable[[], Awaitable[int]]


async def _node_registered(r: redis.asyncio.Redis, node_id: str) -> bool:
    return bool(await r.hexists("video:nodes", node_id)) and bool(await r.exists(f"video:node:{node_id}:alive"))


@pytest.fixture
async def cluster(aiohttp_server: MakeServer, config: Config, tmp_path: Path) -> AsyncIterator[Cluster]:
    # One-second recording segments: node A's part of the call is on disk in closed files when it dies.
    base = config.with_(ice_addresses=("127.0.0.1",), video_drain_s=0.0, recording_segment_s=1.0)
    platform_port = free_port()
    platform = await aiohttp_server(build_root(base.with_(port=platform_port), ["platform"]), port=platform_port)
    engine = create_engine(base.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    r = redis.asyncio.Redis.from_url(str(base.redis_url), decode_responses=True)

    # Node A: its own process, so it can die the way a machine does.
    port_a = free_port()
    env = {**os.environ, "CLOUDBANK_VIDEO_NODE_ID": "node-a", "CLOUDBANK_ICE_ADDRESSES": "127.0.0.1",
           "CLOUDBANK_VIDEO_TRANSCRIBE": "false", "CLOUDBANK_RECORDING_SEGMENT_S": "1",
           "CLOUDBANK_VIDEO_DRAIN_S": "0"}
    env.pop("CLOUDBANK_CONFIG", None)
    log_a = (tmp_path / "node-a.log").open("wb")
    node_a = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloudbank.platform", "video", "--data", str(base.data),
        "--redis-url", str(base.redis_url), "--database-url", base.effective_database_url,
        "--port", str(port_a), env=env, stdout=log_a, stderr=asyncio.subprocess.STDOUT)
    servers: list[TestServer] = []

    async def start_node_b() -> int:
        port_b = free_port()
        cfg_b = base.with_(port=port_b, video_node_id="node-b")
        servers.append(await aiohttp_server(build_root(cfg_b, ["video"]), port=port_b))
        await until_async(lambda: _node_registered(r, "node-b"), 20, "node B in the registry")
        return port_b

    try:
        try:
            await until_async(lambda: _node_registered(r, "node-a"), 60, "node A in the registry")
        except AssertionError:
            log_a.flush()
            raise AssertionError("node A did not register; its log:\n" +
                                 (tmp_path / "node-a.log").read_text(errors="replace")[-4000:]) from None
        yield Cluster(base, str(platform.make_url("")).rstrip("/"), r, directory, node_a, port_a, start_node_b)
    finally:
        if node_a.returncode is None:
            node_a.kill()
        await node_a.wait()
        log_a.close()
        await r.aclose()
        await engine.dispose()


async def _kiosk(url: str, directory: Directory) -> Party:
    client = PlatformClient(url)
    await client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
    party = Party(client)
    await party.listen()
    return party


async def _teller(url: str, directory: Directory) -> Party:
    await directory.add_user("teller1", "teller", password=TELLER_PASSWORD, skills={"general": 1})
    client = PlatformClient(url)
    client.token = (await client.request("POST", "login", {"username": "teller1", "password": TELLER_PASSWORD}))[
        "token"]
    party = Party(client)
    await party.listen()
    await client.request("POST", "teller/state", {"state": "ready"})
    return party


async def test_a_killed_video_node_s_call_is_replaced_and_resumes(cluster: Cluster) -> None:
    kiosk = await _kiosk(cluster.platform_url, cluster.directory)
    teller = await _teller(cluster.platform_url, cluster.directory)
    media: list[MediaSources] = [synthetic(KIOSK_SOURCE), synthetic(TELLER_SOURCE, tone_hz=660)]
    try:
        # The call starts on node A (the only node alive).
        await kiosk.client.create_ticket("general")
        await until(lambda: bool(teller.of_type("offer")), 20, "an offer to the teller")
        accepted = await teller.client.request("POST", f"offers/{teller.of_type('offer')[-1]['offer_id']}/accept")
        session_id = str(accepted["session"]["id"])
        assert accepted["session"]["video_node"] == "node-a"
        assert accepted["video"]["node"] == "node-a"
        await until(lambda: bool(kiosk.of_type("session.started")), 20, "session.started at the kiosk")
        assert "video" not in kiosk.of_type("session.started")[-1]  # its token comes from join

        teller.call = Call(VideoGrant.from_json(accepted["video"]), media[1], ice_addresses=["127.0.0.1"],
                           refresh=lambda: teller.client.join_session(session_id), session_id=session_id)
        kiosk.call = Call(await kiosk.client.join_session(session_id), media[0], ice_addresses=["127.0.0.1"],
                          refresh=lambda: kiosk.client.join_session(session_id), session_id=session_id)
        await teller.call.join()
        await kiosk.call.join()
        await kiosk.client.request("POST", f"sessions/{session_id}/activate")
        kiosk_call, teller_call = kiosk.call, teller.call
        await until(lambda: len(_from(kiosk_call, TELLER_SOURCE)) >= 20 and
                    len(_from(teller_call, KIOSK_SOURCE)) >= 20, 30, "stamped frames both ways on node A")
        folder = recording_folder(cluster.config, session_id)
        await until(lambda: len(list(folder.glob("customer-video-*.webm"))) >= 1, 20,
                    "a closed recording segment on node A")

        # Node B comes up; then node A dies without a word.
        port_b = await cluster.start_node_b()
        before = (max(_from(teller_call, KIOSK_SOURCE)), max(_from(kiosk_call, TELLER_SOURCE)))
        leg_a_files = {p.name: file_sha256(p) for p in folder.glob("*.webm")}
        cluster.node_a.send_signal(signal.SIGKILL)
        await cluster.node_a.wait()

        # The sweep drops A (once its alive key expires) and the platform moves the call to B.
        await until(lambda: bool(kiosk.of_type("video.rejoin")) and bool(teller.of_type("video.rejoin")), 45,
                    "video.rejoin at both parties")
        for party, role in ((kiosk, "customer"), (teller, "teller")):
            rejoin = party.of_type("video.rejoin")
            assert len(rejoin) == 1, f"the {role} was told to rejoin {len(rejoin)} times"
            assert rejoin[0]["session"]["id"] == session_id and rejoin[0]["session"]["video_node"] == "node-b"
            assert rejoin[0]["video"]["node"] == "node-b" and f":{port_b}/" in rejoin[0]["video"]["url"]
        assert not await cluster.redis.hexists("video:nodes", "node-a")

        # Both reconnect to B, and stamped frames flow again both ways.
        await until(lambda: all(c.state == "connected" and f":{port_b}/" in c.grant.url
                                for c in (kiosk_call, teller_call)), 30, "both parties connected to node B")
        await until(lambda: max(_from(teller_call, KIOSK_SOURCE)) > before[0] + 20 and
                    max(_from(kiosk_call, TELLER_SOURCE)) > before[1] + 20, 30, "stamped frames both ways on B")
        for seen in (_from(kiosk_call, TELLER_SOURCE), _from(teller_call, KIOSK_SOURCE)):
            assert seen == sorted(seen), "frames went back in time across the move"

        # The session row names node B; the call is still live; the audit chain says why.
        session = (await teller.client.request("GET", f"sessions/{session_id}"))["session"]
        assert session["video_node"] == "node-b" and session["state"] == "active"
        moved = [e for e in await _audit(cluster, session_id) if e["action"] == "session.moved"]
        assert [(m["details"]["from_node"], m["details"]["to_node"]) for m in moved] == [("node-a", "node-b")]

        # The recording goes on on B, in the same folder; node A's closed segments are untouched.
        await until(lambda: len(set(p.name for p in folder.glob("customer-video-*.webm")) - set(leg_a_files)) >= 1
                    and len(set(p.name for p in folder.glob("teller-video-*.webm")) - set(leg_a_files)) >= 1, 20,
                    "recording segments of the call's second leg on node B")
        assert {n: file_sha256(folder / n) for n in leg_a_files} == leg_a_files

        # The call ends; node B closes the room and writes the manifest of its leg, every hash right.
        await teller.client.request("POST", f"sessions/{session_id}/end")
        await until(lambda: bool(kiosk.of_type("session.ended")), 20, "session.ended at the kiosk")
        await kiosk.call.leave()
        await teller.call.leave()
        kiosk.call = teller.call = None
        await until(lambda: (folder / "manifest.json").exists(), 30, "the recording's manifest")
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = [s for t in manifest["tracks"] for s in t["segments"]]
        assert {t["party"] for t in manifest["tracks"] if t["kind"] == "video"} == {"customer", "teller"}
        for seg in listed:
            assert file_sha256(cluster.config.data / seg["path"]) == seg["sha256"]
        assert not {Path(s["path"]).name for s in listed} & set(leg_a_files), "B's manifest claims A's files"
        # A's closed segments (at least those seen before the kill) are in B's manifest and hashed.
        earlier = {Path(e["path"]).name: e for e in manifest["earlier_segments"]}
        assert set(leg_a_files) <= set(earlier)
        assert {(e["party"], e["kind"]) for e in earlier.values()} >= {("customer", "video"), ("teller", "video")}
        for name, entry in earlier.items():
            assert file_sha256(cluster.config.data / entry["path"]) == entry["sha256"] == \
                leg_a_files.get(name, entry["sha256"])
        assert not list(folder.glob("manifest-*.json")), "one manifest for the call"
        chain = AuditChain(create_engine(cluster.config.effective_database_url))
        try:
            assert (await chain.verify(cluster.config.data)).ok
            recovered = [r for r in await chain.records(subject=f"session:{session_id}")
                         if r.action == "recording.recovered"]
        finally:
            await chain.engine.dispose()
        assert [sorted(Path(f["path"]).name for f in r.details["files"]) for r in recovered] == [sorted(earlier)]
    finally:
        await kiosk.close()
        await teller.close()
        for m in media:
            m.stop()


async def _audit(cluster: Cluster, session_id: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from cloudbank.platform.records import audit_log

    engine = create_engine(cluster.config.effective_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log).where(audit_log.c.subject == f"session:{session_id}")
                                       .order_by(audit_log.c.seq))).all()
    finally:
        await engine.dispose()
    return [{"action": r.action, "details": json.loads(r.details) if isinstance(r.details, str) else r.details}
            for r in rows]


# -- the browser clients: the phone/kiosk page's VideoCall and the seat console's VideoLink ----------

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection", "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required"]

# In the page: both browser clients start on a dead node (`dead`: nothing listens on its port) and
# retry there, as they do when their node is killed; then each gets the grant `video.rejoin` carries.
BROWSER_MOVE = """async ({dead, customer, teller}) => {
  const { VideoCall } = await import("/phone/static/js/call.js");
  const { VideoLink } = await import("/seat/static/js/rtc.js");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
  const s = window.__failover = { phone: [], seat: [] };
  s.call = new VideoCall({ grant: dead, localStream: stream, refresh: async () => dead, maxRejoins: 2,
                           onState: (st) => s.phone.push(st) });
  s.call._lost();  // the socket to the node closed: the phone retries, runs out of attempts, says failed
  s.link = new VideoLink({ video: dead, mode: "send", localStream: stream, refresh: async () => dead,
                           onStatus: (st) => s.seat.push(st) });
  s.link.start();
  s.customer = customer; s.teller = teller;
}"""


@pytest.fixture
async def single_node(aiohttp_server: MakeServer, config: Config) -> AsyncIterator[tuple[str, Directory]]:
    port = free_port()
    cfg = config.with_(port=port, ice_addresses=("127.0.0.1",), video_drain_s=0.0, video_node_id="node-b")
    server = await aiohttp_server(build_root(cfg, ["platform", "video", "phone", "seat"]), port=port)
    engine = create_engine(cfg.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    yield str(server.make_url("")).rstrip("/"), directory
    await engine.dispose()


async def test_the_phone_page_and_seat_console_move_to_the_node_video_rejoin_names(
        single_node: tuple[str, Directory]) -> None:
    from playwright.async_api import async_playwright

    url, directory = single_node
    kiosk = await _kiosk(url, directory)
    teller = await _teller(url, directory)
    try:
        await kiosk.client.create_ticket("general")
        await until(lambda: bool(teller.of_type("offer")), 20, "an offer to the teller")
        accepted = await teller.client.request("POST", f"offers/{teller.of_type('offer')[-1]['offer_id']}/accept")
        await until(lambda: bool(kiosk.of_type("session.started")), 20, "session.started at the kiosk")
        started_id = str(kiosk.of_type("session.started")[-1]["session"]["id"])
        customer_grant = (await kiosk.client.request("POST", f"sessions/{started_id}/join"))["video"]
        dead = {**customer_grant, "url": f"http://127.0.0.1:{free_port()}/video/", "node": "node-a"}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
            try:
                page = await (await browser.new_context(permissions=["camera", "microphone"])).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(url + "/phone/")
                await page.evaluate(BROWSER_MOVE, {"dead": dead, "customer": customer_grant,
                                                   "teller": accepted["video"]})
                # The phone gives up on the dead node; the seat is still backing off between attempts.
                await page.wait_for_function("() => window.__failover.phone.includes('failed')", timeout=20_000)
                await page.wait_for_function("() => window.__failover.link.rejoins >= 2", timeout=20_000)

                # video.rejoin: each moves to the named node at once (the seat's pending back-off is cut).
                cut = await page.evaluate("""() => { const s = window.__failover;
                    s.call.moveTo(s.customer); s.link.moveTo(s.teller); return s.link.rejoinTimer === null; }""")
                assert cut, "the seat kept waiting out its back-off against the dead node"
                await page.wait_for_function("""() => window.__failover.phone.includes('connected')
                    && window.__failover.seat[window.__failover.seat.length - 1] === 'connected'""", timeout=30_000)
                state = await page.evaluate("""() => ({grant: window.__failover.call.grant.url,
                    link: window.__failover.link.video.url})""")
                assert state == {"grant": customer_grant["url"], "link": accepted["video"]["url"]}
                # A grant after leaving does nothing.
                await page.evaluate("() => { const s = window.__failover; s.call.leave(); s.link.close();"
                                    " s.call.moveTo(s.customer); s.link.moveTo(s.teller); }")
                assert await page.evaluate("() => window.__failover.link.ws === null && !window.__failover.call.ws")
                assert errors == []
            finally:
                await browser.close()
    finally:
        await kiosk.close()
        await teller.close()


async def test_the_sdk_takes_a_rejoin_grant_mid_retry_and_ignores_events_not_for_its_call(
        single_node: tuple[str, Directory]) -> None:
    url, directory = single_node
    kiosk = await _kiosk(url, directory)
    teller = await _teller(url, directory)
    media = synthetic(KIOSK_SOURCE)
    try:
        await kiosk.client.create_ticket("general")
        await until(lambda: bool(teller.of_type("offer")), 20, "an offer to the teller")
        accepted = await teller.client.request("POST", f"offers/{teller.of_type('offer')[-1]['offer_id']}/accept")
        session_id = str(accepted["session"]["id"])
        await until(lambda: bool(kiosk.of_type("session.started")), 20, "session.started at the kiosk")
        good = (await kiosk.client.request("POST", f"sessions/{session_id}/join"))["video"]
        dead = VideoGrant(f"http://127.0.0.1:{free_port()}/video/", str(good["token"]))

        async def refresh() -> VideoGrant:
            return dead  # the platform still names the dead node (its heartbeat key has not expired)

        call = Call(dead, media, refresh=refresh, ice_addresses=["127.0.0.1"], max_rejoins=1000,
                    session_id=session_id)
        kiosk.call = call
        rejoin = asyncio.create_task(call.rejoin())
        await until(lambda: call.rejoins >= 3, 20, "the call retrying against the dead node")

        # Events that are not this call's move nothing.
        other = {"type": "video.rejoin", "session": {"id": "00000000-0000-0000-0000-000000000000"}, "video": good}
        for event in (other, {"type": "video.rejoin", "session": {"id": session_id}},
                      {"type": "video.rejoin", "session": {"id": session_id}, "video": "x" * 1_000_000},
                      {"type": "push", "session": {"id": session_id}, "video": good}, {}):
            assert await call.handle_event(event) is False
        assert call._offered is None and call.grant is dead

        # The platform's grant: the running rejoin takes it at once and joins the node it names.
        event = {"type": "video.rejoin", "session": {"id": session_id, "video_node": "node-b"}, "video": good}
        assert await call.handle_event(event) is True
        await asyncio.wait_for(rejoin, 20)
        assert call.state == "connected" and call.grant.url == good["url"]
        assert call.rejoins < 1000
    finally:
        await kiosk.close()
        await teller.close()
        media.stop()
