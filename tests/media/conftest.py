"""Fixtures for the media platform's tests: the platform and media apps composed as `cloudbank up`
composes them (build_root), people who sign in through the real `POST /api/login`, real sample
files of every allowed type (encoded with OpenCV and PyAV), real call recordings written by the
video node's own Recorder and `finish_recording` from VP8 packets of aiortc's encoder, and real calls
(`call_deployment`, `real_call`): platform, media and video on a real socket, two aiortc peers
(customer and teller) that join the video node and send stamped video and a tone, recorded by the
node exactly as in production."""

from __future__ import annotations

import asyncio
import fractions
import io
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.audit import AuditChain
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate, sessions
from cloudbank.platform.server import build_root
from cloudbank.video.packets import TrackInfo
from cloudbank.video.recorder import Recorder, finish_recording, recording_folder
from cloudbank.video.testing_peers import Peer, join_token

PASSWORD = "correct-horse-battery"
PEOPLE = (("admin1", "admin", []), ("admin2", "admin", []), ("super1", "supervisor", []),
          ("super2", "supervisor", ["other"]), ("teller1", "teller", []))
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def image(seed: int, width: int = 64, height: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


def png_bytes(seed: int = 1) -> bytes:
    ok, buf = cv2.imencode(".png", image(seed))
    assert ok
    return bytes(buf)


def jpeg_bytes(seed: int = 2) -> bytes:
    ok, buf = cv2.imencode(".jpg", image(seed))
    assert ok
    return bytes(buf)


def pdf_bytes() -> bytes:
    """A minimal, valid one-page PDF."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def video_bytes(fmt: str, codec: str, frames: int = 6) -> bytes:
    """A short real video in `fmt` (webm/mp4), encoded with PyAV."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(image(i), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


@dataclass(frozen=True)
class Samples:
    png: bytes
    jpeg: bytes
    pdf: bytes
    webm: bytes
    mp4: bytes
    webm_5s: bytes  # 75 frames at 15 fps: a clip that plays for 5 s


@pytest.fixture(scope="session")
def samples() -> Samples:
    return Samples(png_bytes(), jpeg_bytes(), pdf_bytes(), video_bytes("webm", "libvpx"),
                   video_bytes("mp4", "mpeg4"), video_bytes("webm", "libvpx", frames=75))


@dataclass
class Media:
    """A running platform + media deployment and the signed-in people (username -> token, user id)."""

    client: TestClient[Any, Any]
    config: Config
    engine: AsyncEngine
    tokens: dict[str, str]
    ids: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def upload(self, data: bytes, name: str, who: str = "admin1", content_type: str | None = None,
                     ) -> dict[str, Any]:
        headers = self.auth(who)
        if content_type:
            headers["Content-Type"] = content_type
        resp = await self.client.post("/media/api/items", params={"name": name}, data=data, headers=headers)
        assert resp.status in (200, 201), await resp.text()
        return dict((await resp.json())["item"])

    async def enrol_kiosk(self, branch: str = "demo") -> tuple[str, str]:
        """(device id, device token) of a kiosk enrolled through the real endpoint."""
        code = await Directory(self.engine).create_enrolment_code(branch)
        resp = await self.client.post("/api/devices/enrol", json={"code": code, "name": f"kiosk-{branch}"})
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        return str(body["device_id"]), str(body["token"])

    async def approved_playlist(self, branch: str, item_ids: list[str], duration_s: float = 5.0) -> dict[str, Any]:
        """A playlist made by admin1 and approved by admin2."""
        resp = await self.client.post("/media/api/playlists", headers=self.auth("admin1"), json={
            "branch": branch, "name": f"{branch} idle",
            "items": [{"item_id": i, "duration_s": duration_s} for i in item_ids]})
        assert resp.status == 201, await resp.text()
        playlist = (await resp.json())["playlist"]
        resp = await self.client.post(f"/media/api/playlists/{playlist['id']}/versions/1/approve",
                                      headers=self.auth("admin2"))
        assert resp.status == 200, await resp.text()
        return dict(playlist)


async def add_people(engine: AsyncEngine) -> dict[str, str]:
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await directory.ensure_branch("north", "North Branch")
    ids = {}
    for username, role, queues in PEOPLE:
        user, _ = await directory.add_user(username, role, display_name=username.title(), password=PASSWORD,
                                           queues=queues)
        ids[username] = user.id
    return ids


@pytest.fixture
async def media(config: Config, aiohttp_client: MakeClient) -> AsyncIterator[Media]:
    config = config.with_(max_upload_bytes=256 * 1024)
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    ids = await add_people(engine)
    client = await aiohttp_client(build_root(config, ["platform", "media"]))
    tokens = {}
    for username, _, _ in PEOPLE:
        resp = await client.post("/api/login", json={"username": username, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        tokens[username] = (await resp.json())["token"]
    try:
        yield Media(client, config, engine, tokens, ids)
    finally:
        await engine.dispose()


async def record_call(config: Config, engine: AsyncEngine, session_id: str, *, teller_id: str | None = None,
                      service: str = "deposit", frames: int = 20, started_at: float | None = None) -> Path:
    """A real recording: VP8 packets from aiortc's encoder through the video node's Recorder, closed by
    `finish_recording` (manifest + audit record), a transcript beside it, and the platform's session row."""
    encoder = get_encoder(VP8)
    track = TrackInfo(session_id, "customer", "video", "video/VP8", 90000, 96, 4242)
    recorder = Recorder(session_id, recording_folder(config, session_id), lambda _party: None, segment_s=0.5)
    seq = 1000
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(image(i, 160, 120), format="bgr24")
        frame.pts = i * 6000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, ts = encoder.encode(frame, force_keyframe=i % 5 == 0)
        for k, payload in enumerate(payloads):
            recorder.on_rtp(track, RtpPacket(payload_type=96, marker=int(k == len(payloads) - 1),
                                             sequence_number=seq % 65536, timestamp=ts, ssrc=4242,
                                             payload=payload))
            seq += 1
    await recorder.close()
    if started_at is not None:  # an old call: its manifest says when it happened
        recorder.started_at, recorder.ended_at = started_at, started_at + 60
    folder = recording_folder(config, session_id)
    folder.mkdir(parents=True, exist_ok=True)
    transcript = folder / "transcript.vtt"
    transcript.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\n<v customer>안녕하세요\n", encoding="utf-8")
    parties = {"customer": "device:k1"} | ({"teller": f"user:{teller_id}"} if teller_id else {})
    manifest = await finish_recording(recorder, AuditChain(engine), config.data, actor="video:test",
                                      parties=parties, transcripts=[transcript])
    async with engine.begin() as conn:
        await conn.execute(sessions.insert().values(
            id=session_id, ticket_id=f"t-{session_id}", service=service, customer="device:k1", teller_id=teller_id,
            state="ended", created_at=started_at or time.time(), ended_at=(started_at or time.time()) + 60))
    return manifest


@pytest.fixture
def record(media: Media) -> Callable[..., Awaitable[Path]]:
    """`await record(session_id, teller_id=..., service=..., started_at=...)`: a real recording in the
    media deployment's data folder (see record_call); returns its manifest path."""

    async def go(session_id: str, **kwargs: Any) -> Path:
        return await record_call(media.config, media.engine, session_id, **kwargs)

    return go


@pytest.fixture
def record_into() -> Callable[..., Awaitable[Path]]:
    """`await record_into(config, session_id, **kwargs)`: record_call with its own engine (for tests that
    run a deployment without the `media` fixture)."""

    async def go(config: Config, session_id: str, **kwargs: Any) -> Path:
        engine = create_engine(config.effective_database_url)
        try:
            await migrate(engine)
            return await record_call(config, engine, session_id, **kwargs)
        finally:
            await engine.dispose()

    return go


# -- real calls through a video node -----------------------------------------------------------

CALL_NODE = "media-test-node"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    url: str
    config: Config
    ids: dict[str, str]  # username -> user id


@asynccontextmanager
async def deployment(config: Config, people: tuple[tuple[str, str, str], ...]) -> AsyncIterator[Deployment]:
    """platform + media + video on one port; `people` are (username, role, display name)."""
    port = free_port()
    config = config.with_(port=port, video_node_id=CALL_NODE, recording_segment_s=1.0, asr_pool_size=0,
                          video_drain_s=1.0)
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    ids = {}
    for username, role, display in people:
        user, _ = await directory.add_user(username, role, display_name=display, password=PASSWORD)
        ids[username] = user.id
    await engine.dispose()
    runner = web.AppRunner(build_root(config, ["platform", "media", "video"]), access_log=None,
                           shutdown_timeout=3.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Deployment(config.base_url, config, ids)
    finally:
        await runner.cleanup()


async def real_call(dep: Deployment, session_id: str, teller_id: str, *, seconds: float = 3.0,
                    service: str = "deposit", teller_media: bool = True) -> None:
    """A call of about `seconds` through the deployment's video node, recorded by it. With
    `teller_media=False` the teller's media never connects (only the customer is recorded)."""
    engine = create_engine(dep.config.effective_database_url)
    try:
        now = time.time()
        async with engine.begin() as conn:
            await conn.execute(sessions.insert().values(
                id=session_id, ticket_id=f"t-{session_id}", service=service, customer="device:k1",
                teller_id=teller_id, state="active", created_at=now))
        ws = f"{dep.url}/video/ws"
        customer = Peer("customer", source=1)
        teller = Peer("teller", source=2)
        await customer.join(ws, await join_token(engine, session_id, "customer", CALL_NODE, sub="device:k1"))
        if teller_media:
            await teller.join(ws, await join_token(engine, session_id, "teller", CALL_NODE, sub=f"user:{teller_id}"))
        await asyncio.sleep(seconds)
        await customer.close()
        if teller_media:
            await teller.close()
        async with engine.begin() as conn:
            await conn.execute(sessions.update().where(sessions.c.id == session_id)
                               .values(state="closed", ended_at=time.time()))
    finally:
        await engine.dispose()


CALL_PEOPLE = (("admin1", "admin", "Admin One"), ("admin2", "admin", "Admin Two"), ("tlee", "teller", "Teresa Lee"),
               ("bkim", "teller", "Bora Kim"))


@pytest.fixture
async def call_deployment(config: Config) -> AsyncIterator[Deployment]:
    """platform + media + video on a real port, with admin1, admin2 and the tellers tlee (Teresa Lee) and bkim."""
    async with deployment(config, CALL_PEOPLE) as dep:
        yield dep


@pytest.fixture
def make_call() -> Callable[..., Awaitable[None]]:
    """`await make_call(dep, session_id, teller_id, seconds=..., teller_media=...)`: see real_call."""
    return real_call
