"""`cloudbank bench media`: the video node's cost per call, measured, against two baselines.

N calls run at once through a real video node in its own process (recording, transcript tap and
snapshot sinks on, as in production; the transcript is off when no vosk model loads). Each call
is a synthetic customer and teller sending PRE-ENCODED 640x480 VP8 at 15 fps plus Opus, so the
clients (in this process) stay cheap, and receiving without decoding except for one measuring
viewer, which decodes the pixel stamps to time each frame end to end. In the same run: one call
through an aiortc MediaRelay (decode and re-encode, in its own process) and one direct
peer-to-peer call. CPU is read from /proc for the server process only.

Only loopback is used; run it inside `unshare -n` like the tests when the host has other interfaces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from cloudbank.platform.config import Config
from cloudbank.video.forwarding import ReceiveTap, codec_preferences
from cloudbank.video.ice import restrict_ice
from cloudbank.video.testing_peers import BITS, LOOPBACK, read_stamp, stamp_bits

FPS = 15
LOOP_FRAMES = 60  # 4 s of video, keyframe every 2 s
VIDEO_CLOCK = 90000
QUIET_DBFS_AMPLITUDE = 0.003  # a tone under the tap's voice gate: Opus decode + gate, no recognition


# --- pre-encoded media -------------------------------------------------------------------------

def _textured_frame(counter: int, rng: np.random.Generator) -> av.VideoFrame:
    """A stamped 640x480 frame with moving noise, so VP8 spends a camera-like bitrate on it."""
    width, height = 640, 480
    luma = rng.integers(60, 140, size=(height, width), dtype=np.uint8)
    block = width // BITS
    for i, bit in enumerate(stamp_bits(0, counter)):
        luma[:block, i * block:(i + 1) * block] = 235 if bit else 16
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    return av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")


def pre_encode_video(bitrate: int = 700_000) -> list[bytes]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 480, "yuv420p"
    ctx.bit_rate = bitrate
    ctx.framerate = fractions.Fraction(FPS)
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.gop_size = 30
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for i in range(LOOP_FRAMES):
        frame = _textured_frame(i, rng)
        frame.pts = i
        frame.time_base = fractions.Fraction(1, FPS)
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out[:LOOP_FRAMES]


def pre_encode_audio(amplitude: float) -> list[bytes]:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "s16"
    ctx.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    for i in range(50):
        t = (np.arange(960) + i * 960) / 48000
        mono = (amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        out += [bytes(p) for p in ctx.encode(frame)]
    return out


class PacketTrack(MediaStreamTrack):
    """Yields pre-encoded packets in a loop, paced in real time (aiortc sends them without encoding)."""

    def __init__(self, kind: str, packets: list[bytes], rate: float, clock: int) -> None:
        super().__init__()
        self.kind = kind
        self.packets, self.rate, self.clock = packets, rate, clock
        self.count = 0
        self.sent_at: dict[int, float] = {}  # loop index -> when it was last sent
        self._start: float | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self.count / self.rate - time.monotonic()))
        index = self.count % len(self.packets)
        packet = av.Packet(self.packets[index])
        packet.pts = int(self.count * self.clock / self.rate)
        packet.time_base = fractions.Fraction(1, self.clock)
        self.sent_at[index] = time.monotonic()
        self.count += 1
        return packet


# --- synthetic parties -------------------------------------------------------------------------

class Party:
    """One synthetic party: sends the pre-encoded loop; counts what it receives, or decodes stamps."""

    def __init__(self, video: list[bytes], audio: list[bytes], measure: bool) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.video = PacketTrack("video", video, FPS, VIDEO_CLOCK)
        self.audio = PacketTrack("audio", audio, 50, 48000)
        self.measure = measure
        self.frames = 0
        self.latencies: list[float] = []
        self.source: PacketTrack | None = None  # the sender whose frames this party times
        self._last_ts: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        for track in (self.audio, self.video):
            t = self.pc.addTransceiver(track, direction="sendrecv")
            t.setCodecPreferences(codec_preferences(track.kind))
            if track.kind == "video" and not measure:
                ReceiveTap(t.receiver, self._count)  # no decoding: count frames as they arrive
        restrict_ice(self.pc, ["127.0.0.1"], LOOPBACK)
        self.pc.on("track", self._on_track)

    async def _count(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if packet.timestamp != self._last_ts:
            self._last_ts = packet.timestamp
            self.frames += 1

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.measure and track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._decode(track)))
        elif track.kind == "audio":
            self._tasks.append(asyncio.ensure_future(self._drain(track)))

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def _decode(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.frames += 1
                stamp = read_stamp(frame) if isinstance(frame, av.VideoFrame) else None
                if stamp is not None and self.source is not None and stamp[1] in self.source.sent_at:
                    delay = now - self.source.sent_at[stamp[1]]
                    if 0 <= delay < LOOP_FRAMES / FPS / 2:
                        self.latencies.append(delay * 1000)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def connected(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if time.monotonic() > deadline or self.pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"a synthetic party did not connect ({self.pc.connectionState})")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def _join_node(party: Party, session: aiohttp.ClientSession, url: str, token: str,
                     sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    ws = await session.ws_connect(f"{url}?token={token}")
    sockets.append(ws)
    await ws.receive_json(timeout=10)
    await ws.send_json({"type": "offer", "sdp": await party.offer()})
    while True:
        msg = await ws.receive_json(timeout=20)
        if msg["type"] == "answer":
            await party.answer(msg["sdp"])
            return
        if msg["type"] == "error":
            raise RuntimeError(f"the node refused a party: {msg}")


# --- measuring a server process ----------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(pid: int, seconds: float,
                  parties: list[Party]) -> tuple[float, float, list[int], list[int]]:
    """Server and client (this process) CPU % of one core over the window; frames sent/received
    per party in it. When the client nears a core, its latency figures suffer too."""
    sent0 = [p.video.count for p in parties]
    got0 = [p.frames for p in parties]
    cpu0, own0, wall0 = cpu_seconds(pid), cpu_seconds(os.getpid()), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall0
    cpu = 100 * (cpu_seconds(pid) - cpu0) / wall
    own = 100 * (cpu_seconds(os.getpid()) - own0) / wall
    return cpu, own, [p.video.count - s for p, s in zip(parties, sent0, strict=True)], \
        [p.frames - g for p, g in zip(parties, got0, strict=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _spawn(args: list[str], ready: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "cloudbank.video.bench_media", *args,
                                                stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if ready not in line.decode():
        proc.kill()
        raise RuntimeError(f"the bench server did not start: {line!r}")
    return proc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# --- the runs ----------------------------------------------------------------------------------

async def run_node(config: Config, calls: int, seconds: float, video: list[bytes],
                   audio: list[bytes], sinks: bool = True) -> dict[str, Any]:
    from cloudbank.platform.records import create_engine
    from cloudbank.platform.server import prepare_database
    from cloudbank.platform.tokens import KeyRing

    port = _free_port()
    await prepare_database(config)
    env = dict(os.environ, CLOUDBANK_DATA=str(config.data), CLOUDBANK_REDIS_URL=str(config.redis_url),
               CLOUDBANK_DATABASE_URL=config.effective_database_url, CLOUDBANK_VIDEO_NODE_ID="bench",
               CLOUDBANK_VIDEO_DRAIN_S="2")
    proc = await _spawn(["node" if sinks else "bare-node", str(port)], "is up", env)
    engine = create_engine(config.effective_database_url)
    keys = KeyRing(engine)
    await keys.load()
    url = f"ws://127.0.0.1:{port}/video/ws"
    parties: list[Party] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(calls):
                customer, teller = Party(video, audio, measure=False), Party(video, audio, measure=(i == 0))
                teller.source = customer.video
                parties += [customer, teller]
                for party, role in ((customer, "customer"), (teller, "teller")):
                    token = keys.issue(f"{role}-{i}", "join", f"session:bench{i}", 600, party=role, node="bench")
                    await _join_node(party, session, url, token, sockets)
            await asyncio.gather(*(p.connected() for p in parties))
            await asyncio.sleep(3)  # first keyframes, recorder threads, warm caches
            cpu, client_cpu, sent, got = await measure(proc.pid, seconds, parties)
            # a party receives what the other party of its call sent
            pairs = [(got[i], sent[i ^ 1]) for i in range(len(parties))]
            ratio = sum(g for g, _ in pairs) / max(1, sum(s for _, s in pairs))
            latencies = parties[1].latencies
            for ws in sockets:
                await ws.close()
    finally:
        for p in parties:
            await p.close()
        await _stop(proc)
        await engine.dispose()
    return {"server_cpu_pct": round(cpu, 1), "client_cpu_pct": round(client_cpu, 1),
            "frames_delivered_ratio": round(min(1.0, ratio), 4),
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "latency_samples": len(latencies)}


async def run_p2p(seconds: float, video: list[bytes], audio: list[bytes]) -> dict[str, Any]:
    a, b = Party(video, audio, measure=False), Party(video, audio, measure=True)
    b.source = a.video
    try:
        b_offer = await b.offer()  # b offers, a answers: a plain two-party call, nothing between
        await a.pc.setRemoteDescription(RTCSessionDescription(sdp=b_offer, type="offer"))
        await a.pc.setLocalDescription(await a.pc.createAnswer())
        await b.answer(a.pc.localDescription.sdp)
        await asyncio.gather(a.connected(), b.connected())
        await asyncio.sleep(3)
        b.latencies.clear()
        await asyncio.sleep(seconds)
        lat = b.latencies
    finally:
        await a.close()
        await b.close()
    return {"p2p_latency_ms_p50": round(statistics.median(lat), 1) if lat else None}


async def run_transcode(seconds: float, video: list[bytes], audio: list[bytes]) -> dict[str, Any]:
    port = _free_port()
    proc = await _spawn(["relay", str(port)], "relay up", dict(os.environ))
    customer, teller = Party(video, audio, measure=False), Party(video, audio, measure=True)
    teller.source = customer.video
    try:
        async with aiohttp.ClientSession() as session:
            for party, role in ((customer, "customer"), (teller, "teller")):
                async with session.post(f"http://127.0.0.1:{port}/offer",
                                        json={"party": role, "sdp": await party.offer()}) as resp:
                    await party.answer((await resp.json())["sdp"])
        await asyncio.gather(customer.connected(), teller.connected())
        await asyncio.sleep(3)
        teller.latencies.clear()
        cpu, _, _, _ = await measure(proc.pid, seconds, [customer, teller])
        lat = teller.latencies
    finally:
        await customer.close()
        await teller.close()
        await _stop(proc)
    return {"transcode_cpu_pct_per_call": round(cpu, 1),
            "transcode_latency_ms_p50": round(statistics.median(lat), 1) if lat else None}


async def bench(config: Config, calls: int, seconds: float, speech: bool,
                forwarding_only: bool = True) -> dict[str, Any]:
    video = pre_encode_video()
    audio = pre_encode_audio(0.2 if speech else QUIET_DBFS_AMPLITUDE)
    node = await run_node(config, calls, seconds, video, audio)
    bare = await run_node(config, calls, min(seconds, 15), video, audio, sinks=False) if forwarding_only else None
    p2p = await run_p2p(min(seconds, 15), video, audio)
    transcode = await run_transcode(min(seconds, 15), video, audio)
    per_call = node["server_cpu_pct"] / calls
    return {
        "calls": calls, "seconds": seconds, "video": "640x480 VP8 15 fps pre-encoded, both directions",
        "video_kbps": round(sum(map(len, video)) * 8 * FPS / len(video) / 1000),
        "audio": "Opus 20 ms, " + ("speech-level tone (ASR runs)" if speech else "below the voice gate"),
        "server_cpu_pct": node["server_cpu_pct"],
        "server_cpu_pct_per_call": round(per_call, 2),
        "calls_per_core": round(100 / per_call, 1) if per_call > 0 else None,
        "frames_delivered_ratio": node["frames_delivered_ratio"],
        "latency_ms_p50": node["latency_ms_p50"],
        "latency_samples": node["latency_samples"],
        **p2p, **transcode,
        "forwarding_only_cpu_pct_per_call": round(bare["server_cpu_pct"] / calls, 2) if bare else None,
        "forwarding_only_latency_ms_p50": bare["latency_ms_p50"] if bare else None,
        "client_cpu_pct": node["client_cpu_pct"],
        "cpus": os.cpu_count(),
    }


# --- the server processes ----------------------------------------------------------------------

def _serve_node(port: int, sinks: bool) -> None:
    """The video node alone on `port`, as `cloudbank video` runs it; `sinks=False`: forwarding only."""
    from cloudbank.platform.config import load_config
    from cloudbank.video.app import create_app

    config = load_config({"port": port, "host": "127.0.0.1"})

    async def main() -> None:
        root = web.Application()
        root.add_subapp("/video/", create_app(config, sinks=None if sinks else []))
        runner = web.AppRunner(root, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("node is up", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def _serve_relay(port: int) -> None:
    """A decode-and-re-encode SFU as aiortc's examples build it: MediaRelay per incoming track."""
    relay = MediaRelay()
    tracks: dict[str, dict[str, MediaStreamTrack]] = {"customer": {}, "teller": {}}
    arrived = {"customer": asyncio.Event(), "teller": asyncio.Event()}
    pcs: list[RTCPeerConnection] = []

    class Relayed(MediaStreamTrack):
        def __init__(self, kind: str, source: str) -> None:
            super().__init__()
            self.kind, self.source = kind, source
            self.inner: MediaStreamTrack | None = None

        async def recv(self) -> Any:
            if self.inner is None:
                while self.kind not in tracks[self.source]:
                    await arrived[self.source].wait()
                self.inner = relay.subscribe(tracks[self.source][self.kind])
            return await self.inner.recv()

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        party = body["party"]
        other = "teller" if party == "customer" else "customer"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        pcs.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            tracks[party][track.kind] = track
            arrived[party].set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        for kind in ("audio", "video"):
            pc.addTrack(Relayed(kind, other))
        restrict_ice(pc, ["127.0.0.1"], LOOPBACK)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/offer", offer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("relay up", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the command -------------------------------------------------------------------------------

def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=4, help="calls running at once through the node (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="measuring window per run (default 20)")
    p.add_argument("--no-forwarding-only", action="store_true",
                   help="skip the extra run of the node without recording/transcript/snapshot sinks")
    p.add_argument("--speech", action="store_true",
                   help="send a speech-level tone so the transcription tap runs recognition too")


def run(args: argparse.Namespace, config: Config) -> int:
    from cloudbank.platform.redis_server import EmbeddedRedis

    if not 1 <= args.calls <= 64 or not 1 <= args.seconds <= 600:
        print("cloudbank: error: --calls must be 1..64 and --seconds 1..600", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cloudbank-bench-") as tmp:
        data = Path(tmp)
        cfg = config.with_(data=data, database_url=f"sqlite+aiosqlite:///{data / 'bench.sqlite3'}")

        def go(c: Config) -> dict[str, Any]:
            return asyncio.run(bench(c, args.calls, args.seconds, args.speech,
                                     forwarding_only=not args.no_forwarding_only))

        if cfg.redis_url is None:
            with EmbeddedRedis(data / "redis") as embedded:
                result = go(cfg.with_(redis_url=embedded.url))
        else:
            result = go(cfg)
    for key, value in result.items():
        print(f"{key:<28} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _register() -> None:
    from cloudbank.platform.cli import register_bench

    register_bench("media", "video node cost per call vs a transcoding relay and a direct call",
                   add_args, run)


if __name__ == "__main__":
    mode, port_text = sys.argv[1], sys.argv[2]
    if mode == "relay":
        _serve_relay(int(port_text))
    else:
        _serve_node(int(port_text), sinks=mode == "node")
else:
    _register()
