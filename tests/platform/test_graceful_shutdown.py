"""SIGTERM under load, to real `cloudbank <service>` processes on loopback (issue 11).

Each service, sent SIGTERM while it works, stops taking new work, lets what it already accepted
finish (a video call up to `video_drain_s`, an HTTP request that is being handled), closes its
recordings (no `.part` left, the last segment decodable), leaves its records verifiable, leaves
nothing running and exits 0 within a bound.

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
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
import redis.asyncio
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.kiosk_client.errors import PlatformError
from cloudbank.kiosk_client.media_sources import MediaSources, synthetic
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root
from cloudbank.platform.sessions import NoVideoNode, pick_node
from cloudbank.platform.tokens import KeyRing
from cloudbank.video.recorder import recording_folder

pytestmark = pytest.mark.slow

MakeServer = Callable[..., Awaitable[TestServer]]
KIOSK_SOURCE, TELLER_SOURCE = 31, 42
TELLER_PASSWORD = "teller password 123"
EXIT_BOUND_S = 10.0  # SIGTERM to exit for a service with nothing left to wait for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a test polls a plain predicate
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def until_async(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    async def poll() -> None:
        while not await predicate():  # noqa: ASYNC110 - polls a service, bounded by the timeout
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), to check that none outlives it."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    if int(child) not in found:
                        found.add(int(child))
                        todo.append(int(child))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Service:
    """A `cloudbank <name>` process and its log."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def terminate(self, bound_s: float) -> float:
        """SIGTERM; the seconds until it exited (it must, within `bound_s`, with status 0). A service
        already stopping takes it as an impatient operator's or supervisor's second signal: it must
        not cut the stop short."""
        children = descendants(self.proc.pid)
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), bound_s)
        except TimeoutError:
            raise AssertionError(f"still running {bound_s} s after SIGTERM; its log:\n"
                                 + self.output()[-3000:]) from None
        took = time.monotonic() - started
        assert self.proc.returncode == 0, f"exit status {self.proc.returncode}; its log:\n{self.output()[-3000:]}"
        left = [pid for pid in children if running(pid)]
        assert not left, f"processes left running after exit: {left}"
        assert "Traceback" not in self.output(), self.output()[-3000:]
        return took


@pytest.fixture
async def start_service(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    started: list[Service] = []

    async def start(name: str, config: Config | None, env: dict[str, str] | None = None,
                    healthz: str = "healthz") -> Service:
        port = free_port()
        log = tmp_path / f"{name}-{port}.log"
        args = [sys.executable, "-m", "cloudbank.platform", name, "--port", str(port)]
        if config is not None:
            args += ["--data", str(config.data), "--redis-url", str(config.redis_url),
                     "--database-url", config.effective_database_url]
        else:
            args += ["--data", str(tmp_path / "up-data")]
        base = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDBANK_")}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(*args, env={**base, **(env or {})}, stdout=out,
                                                        stderr=asyncio.subprocess.STDOUT)
        service = Service(proc, port, log)
        started.append(service)

        async def healthy() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"cloudbank {name} exited at start:\n{service.output()[-3000:]}")
            try:
                async with aiohttp.ClientSession() as http, http.get(f"{service.url}/{healthz}") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await until_async(healthy, 60, f"cloudbank {name} healthy")
        return service

    yield start
    for service in started:
        if service.proc.returncode is None:
            service.proc.kill()
            await service.proc.wait()


async def _verify_audit(config: Config) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloudbank.platform", "audit", "verify", "--data", str(config.data),
        "--database-url", config.effective_database_url, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode(errors="replace")


# -- the video node: a call in progress ------------------------------------------------------------


def _from(call: Call, source: int) -> list[int]:
    return [counter for src, counter in call.remote.stamps if src == source]


@dataclass
class Party:
    client: PlatformClient
    events: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        self._stream = stream = self.client.events()

        async def pump() -> None:
            async for event in stream:
                self.events.append(event)

        self.task = asyncio.create_task(pump())
        await stream.wait_connected()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        if self.task is not None:
            await self._stream.close()
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.client.close()


@dataclass
class VideoCall:
    config: Config
    node: Service
    redis: redis.asyncio.Redis
    session_id: str
    kiosk: Call
    teller: Call
    teller_client: PlatformClient
    folder: Path
    keys: KeyRing


@contextlib.asynccontextmanager
async def _open_call(aiohttp_server: MakeServer, config: Config, start_service: Callable[..., Awaitable[Service]],
                     drain_s: float) -> AsyncIterator[VideoCall]:
    base = config.with_(ice_addresses=("127.0.0.1",), recording_segment_s=1.0)
    platform_port = free_port()
    platform = await aiohttp_server(build_root(base.with_(port=platform_port), ["platform"]), port=platform_port)
    url = str(platform.make_url("")).rstrip("/")
    engine = create_engine(base.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    await directory.add_user("teller1", "teller", password=TELLER_PASSWORD, skills={"general": 1})
    r = redis.asyncio.Redis.from_url(str(base.redis_url), decode_responses=True)
    node = await start_service("video", base, {
        "CLOUDBANK_VIDEO_NODE_ID": "node-a", "CLOUDBANK_ICE_ADDRESSES": "127.0.0.1",
        "CLOUDBANK_VIDEO_TRANSCRIBE": "false", "CLOUDBANK_RECORDING_SEGMENT_S": "1",
        "CLOUDBANK_VIDEO_DRAIN_S": str(drain_s)}, healthz="video/healthz")

    async def registered() -> bool:
        return bool(await r.exists("video:node:node-a:alive"))

    await until_async(registered, 20, "the node in the registry")

    kiosk = Party(PlatformClient(url))
    await kiosk.client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
    await kiosk.listen()
    teller = Party(PlatformClient(url))
    teller.client.token = (await teller.client.request(
        "POST", "login", {"username": "teller1", "password": TELLER_PASSWORD}))["token"]
    await teller.listen()
    await teller.client.request("POST", "teller/state", {"state": "ready"})
    media: list[MediaSources] = [synthetic(KIOSK_SOURCE), synthetic(TELLER_SOURCE, tone_hz=660)]
    calls: list[Call] = []
    try:
        await kiosk.client.create_ticket("general")
        await until(lambda: bool(teller.of_type("offer")), 20, "an offer to the teller")
        accepted = await teller.client.request("POST", f"offers/{teller.of_type('offer')[-1]['offer_id']}/accept")
        session_id = str(accepted["session"]["id"])
        await until(lambda: bool(kiosk.of_type("session.started")), 20, "session.started at the kiosk")
        teller_call = Call(VideoGrant.from_json(accepted["video"]), media[1], ice_addresses=["127.0.0.1"],
                           session_id=session_id, max_rejoins=0)
        kiosk_call = Call(await kiosk.client.join_session(session_id), media[0],
                          ice_addresses=["127.0.0.1"], session_id=session_id, max_rejoins=0)
        calls += [teller_call, kiosk_call]
        await teller_call.join()
        await kiosk_call.join()
        await kiosk.client.request("POST", f"sessions/{session_id}/activate")
        await until(lambda: len(_from(kiosk_call, TELLER_SOURCE)) >= 20 and
                    len(_from(teller_call, KIOSK_SOURCE)) >= 20, 30, "stamped frames both ways")
        folder = recording_folder(base, session_id)
        await until(lambda: len(list(folder.glob("*-video-*.webm"))) >= 2, 20, "closed recording segments")
        keys = KeyRing(engine)
        await keys.load()
        yield VideoCall(base, node, r, session_id, kiosk_call, teller_call, teller.client, folder, keys)
    finally:
        for c in calls:
            with contextlib.suppress(Exception):
                await c.leave()
        for m in media:
            m.stop()
        await kiosk.close()
        await teller.close()
        await r.aclose()
        await engine.dispose()


async def _draining(r: redis.asyncio.Redis) -> bool:
    raw = await r.hget("video:nodes", "node-a")
    return raw is not None and bool(json.loads(raw)["draining"])


async def _assert_refuses_new_calls(call: VideoCall) -> None:
    """Draining: the registry says so, placement skips the node, and its signalling (still open,
    for the current calls) refuses a new call's party with 409 `draining`."""
    await until_async(lambda: _draining(call.redis), 5, "the node marked draining in the registry")
    with pytest.raises(NoVideoNode):
        await pick_node(call.redis)
    token = call.keys.issue("kiosk-x", "join", f"session:{uuid.uuid4()}", 60, party="customer", node="node-a")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{call.node.url}/video/ws?token={token}"):
                pass
        assert refused.value.status == 409
        async with http.get(f"{call.node.url}/video/ws?token={token}") as resp:
            assert resp.status == 409 and (await resp.json())["code"] == "draining"


def _assert_recording_closed(call: VideoCall) -> None:
    assert not list(call.folder.glob("*.part")), sorted(p.name for p in call.folder.iterdir())
    manifest = json.loads((call.folder / "manifest.json").read_text())
    for track in manifest["tracks"]:
        assert track["segments"], track
        last = call.config.data / track["segments"][-1]["path"]
        with av.open(str(last)) as container:
            frames = sum(1 for _ in container.decode(container.streams[0]))
        assert frames > 0, f"{last.name} holds no decodable frame"
    assert {t["party"] for t in manifest["tracks"] if t["kind"] == "video"} == {"customer", "teller"}


async def test_video_node_drains_a_running_call_then_closes_its_recording(
        aiohttp_server: MakeServer, config: Config, start_service: Callable[..., Awaitable[Service]]) -> None:
    async with _open_call(aiohttp_server, config, start_service, drain_s=30) as call:
        started = time.monotonic()
        call.node.proc.send_signal(signal.SIGTERM)
        await _assert_refuses_new_calls(call)
        # The call goes on while the node drains: frames keep coming both ways.
        before = (max(_from(call.teller, KIOSK_SOURCE)), max(_from(call.kiosk, TELLER_SOURCE)))
        await until(lambda: max(_from(call.teller, KIOSK_SOURCE)) > before[0] + 20 and
                    max(_from(call.kiosk, TELLER_SOURCE)) > before[1] + 20, 10, "frames flowing while draining")
        assert call.node.proc.returncode is None
        # The teller ends the call; the parties leave; the node exits long before the drain limit.
        await call.teller_client.request("POST", f"sessions/{call.session_id}/end")
        await call.kiosk.leave()
        await call.teller.leave()
        remaining = 30 - (time.monotonic() - started)
        took = await call.node.terminate(min(remaining, EXIT_BOUND_S))
        print(f"video node: exited {time.monotonic() - started:.2f} s after SIGTERM, "
              f"{took:.2f} s after the call ended")
        _assert_recording_closed(call)
        await _verify_audit(call.config)


async def test_video_node_closes_a_call_that_outlasts_the_drain_limit(
        aiohttp_server: MakeServer, config: Config, start_service: Callable[..., Awaitable[Service]]) -> None:
    drain_s = 2.0
    async with _open_call(aiohttp_server, config, start_service, drain_s=drain_s) as call:
        took = await call.node.terminate(drain_s + EXIT_BOUND_S)
        print(f"video node with a call past the {drain_s} s drain limit: exited {took:.2f} s after SIGTERM")
        assert took >= drain_s - 0.5, "the call was cut before the drain limit"
        _assert_recording_closed(call)
        await _verify_audit(call.config)


# -- the platform under load ----------------------------------------------------------------------


async def _slow_login(url: str, body: bytes, sent: asyncio.Event) -> int:
    """A login whose body arrives slowly: the server has taken the request (it answered
    `100 Continue`) before `sent` is set, and the body keeps coming after. Returns the status."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 100"), head
        sent.set()
        for i in range(0, len(body), 8):
            writer.write(body[i:i + 8])
            await writer.drain()
            await asyncio.sleep(0.05)  # the shape of the load: a slow client, not a wait for a condition
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        status = int(head.split()[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        reply = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
        assert status != 200 or "token" in reply, reply
        return status
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _ticket_loop(client: PlatformClient, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """Create and leave tickets until the platform stops answering (at most 200 rounds)."""
    for _ in range(200):
        if stop.is_set():
            return
        try:
            ticket = await client.create_ticket("general")
            counts["created"] += 1
            await client.leave(str(ticket["id"]))
            counts["left"] += 1
        except PlatformError as exc:
            if exc.status == 0:
                return  # the socket is gone: the platform took no new work
            assert exc.status < 500, f"{exc.status} {exc}"
            counts["refused"] += 1


async def test_platform_finishes_what_it_accepted_and_exits_0(
        config: Config, start_service: Callable[..., Awaitable[Service]]) -> None:
    service = await start_service("platform", config, healthz="api/healthz")  # migrates the database
    engine = create_engine(config.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    await directory.add_user("teller1", "teller", password=TELLER_PASSWORD, skills={"general": 1})
    kiosks = [Party(PlatformClient(service.url)) for _ in range(4)]
    counts = {"created": 0, "left": 0, "refused": 0}
    stop = asyncio.Event()
    loops: list[asyncio.Task[None]] = []
    try:
        for i, kiosk in enumerate(kiosks):
            await kiosk.client.enrol(await directory.create_enrolment_code("demo"), f"kiosk-{i}")
            await kiosk.listen()  # an open events socket each: the platform must not wait on them
        loops = [asyncio.create_task(_ticket_loop(k.client, stop, counts)) for k in kiosks]
        await until(lambda: counts["left"] >= 8, 20, "tickets created and left under load")
        login = json.dumps({"username": "teller1", "password": TELLER_PASSWORD}).encode()
        accepted = [asyncio.Event() for _ in range(3)]
        slow = [asyncio.create_task(_slow_login(service.url, login, e)) for e in accepted]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in accepted)), 10)

        took = await service.terminate(EXIT_BOUND_S)
        print(f"platform under load: exited {took:.2f} s after SIGTERM ({counts})")
        # The requests it had taken were answered in full, though their bodies came after SIGTERM.
        assert await asyncio.wait_for(asyncio.gather(*slow), 10) == [200, 200, 200]
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 10)
    finally:
        stop.set()
        for task in loops:
            task.cancel()
        for kiosk in kiosks:
            await kiosk.close()
        await engine.dispose()
    await _verify_audit(config)


# -- the other services ---------------------------------------------------------------------------


async def _poll(url: str, stop: asyncio.Event, answered: list[int]) -> None:
    """GET `url` until the service stops answering (at most 2000 times), counting the answers."""
    async with aiohttp.ClientSession() as http:
        for _ in range(2000):
            if stop.is_set():
                return
            try:
                async with http.get(url) as resp:
                    assert resp.status < 500, resp.status
                    await resp.read()
                    answered.append(resp.status)
            except (aiohttp.ClientError, OSError):
                return


@pytest.mark.parametrize("name", ["media", "seat"])
async def test_media_and_seat_exit_0_under_load(
        name: str, config: Config, start_service: Callable[..., Awaitable[Service]]) -> None:
    service = await start_service(name, config, healthz=f"{name}/healthz")
    stop = asyncio.Event()
    answered: list[int] = []
    pollers = [asyncio.create_task(_poll(f"{service.url}/{name}/", stop, answered)) for _ in range(4)]
    try:
        await until(lambda: len(answered) >= 20, 10, "requests answered under load")
        took = await service.terminate(EXIT_BOUND_S)
        print(f"cloudbank {name} under load: exited {took:.2f} s after SIGTERM ({len(answered)} answered)")
        await asyncio.wait_for(asyncio.gather(*pollers), 10)
    finally:
        stop.set()
        for task in pollers:
            task.cancel()


async def test_up_exits_0_and_leaves_nothing_running(
        tmp_path: Path, start_service: Callable[..., Awaitable[Service]]) -> None:
    service = await start_service("up", None, healthz="api/healthz")
    data = Config(data=tmp_path / "up-data")
    engine = create_engine(data.effective_database_url)
    kiosk = Party(PlatformClient(service.url))
    stop = asyncio.Event()
    answered: list[int] = []
    pollers: list[asyncio.Task[None]] = []
    try:
        await kiosk.client.enrol(await Directory(engine).create_enrolment_code("demo"), "kiosk-up")
        await kiosk.listen()
        pollers = [asyncio.create_task(_poll(f"{service.url}/{p}/healthz", stop, answered))
                   for p in ("api", "video", "media", "seat", "phone")]
        await until(lambda: len(answered) >= 20, 10, "requests answered under load")
        assert descendants(service.proc.pid), "no embedded redis-server below cloudbank up"
        took = await service.terminate(EXIT_BOUND_S)
        print(f"cloudbank up: exited {took:.2f} s after SIGTERM")
        await asyncio.wait_for(asyncio.gather(*pollers), 10)
    finally:
        stop.set()
        for task in pollers:
            task.cancel()
        await kiosk.close()
        await engine.dispose()
    await _verify_audit(data)
