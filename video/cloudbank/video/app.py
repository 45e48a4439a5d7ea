"""The WebRTC video node (mounted at /video/): signalling, rooms, forwarding, registry.

State lives under AppKeys: `ROOMS` (room.py), `REGISTRY` and `NODE_ID` (registry.py) and
`SINKS`, the factories that give each new room its packet sinks (recording, audio tap, snapshot).
On SIGTERM the node drains with its port still open (server.py's `DRAIN`: new calls get 409
`draining`, current ones get `video_drain_s` to end and may rejoin meanwhile), then ends the calls
left, closes their recordings and leaves the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc.rtp import RtpPacket

from cloudbank.platform.config import Config
from cloudbank.platform.errors import Forbidden, NotFound
from cloudbank.platform.server import DRAIN
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, REDIS, authenticate, service_app
from cloudbank.video.asr import AsrService
from cloudbank.video.ice import allowed_networks, gather_addresses, restrict_ice
from cloudbank.video.packets import KeyframeRequester, PacketSink, TrackInfo
from cloudbank.video.registry import NODE_ID, REGISTRY, Registry
from cloudbank.video.room import ROOMS, Rooms, SinkFactory
from cloudbank.video.signalling import video_ws
from cloudbank.video.transcription import transcription_off

log = logging.getLogger("cloudbank.video")

SINKS = web.AppKey("video_sinks", list[SinkFactory])
ASR = web.AppKey("video_asr", AsrService)
ADVERTISED_URL = web.AppKey("video_advertised_url", str)  # the node's URL in the registry and join grants


async def _index(request: web.Request) -> web.Response:
    """Where a person who opens the node's address goes next (a video node has no page)."""
    return web.json_response({"service": "cloudbank video node", "node": request.app[NODE_ID],
                              "signalling": "ws", "healthz": "healthz"})


def create_app(config: Config, sinks: Sequence[SinkFactory] | None = None, same_origin: bool = False
               ) -> web.Application:
    """The video node. `sinks`: packet sinks per room; default: the recorder when available.
    `same_origin`: mounted beside the platform on one origin (`cloudbank up`), so without a public
    URL it names itself by path and every client reaches it at the address it used for the platform
    (a LAN client of `--host 0.0.0.0` would otherwise be sent to 127.0.0.1)."""
    app = service_app(config, "video")
    app[ADVERTISED_URL] = "/video/" if same_origin and not config.public_url else f"{config.base_url}/video/"
    app[NODE_ID] = config.video_node_id or f"video-{uuid.uuid4().hex[:12]}"
    app[SINKS] = list(sinks) if sinks is not None else default_sinks(app)
    if sinks is None:
        app.cleanup_ctx.append(_asr)
    app.cleanup_ctx.append(_media)
    app[DRAIN] = lambda: _drain(app)
    app.on_shutdown.append(_drain)  # at once when run without server.py (nothing left to drain after)
    app.router.add_get("/", _index)
    app.router.add_get("/ws", video_ws)
    app.router.add_get("/snapshots/{session}/{name}", snapshot_file)
    return app


SNAPSHOT_NAME = re.compile(r"^[a-z]+-[0-9]{4,9}\.jpg$")


async def snapshot_file(request: web.Request) -> web.StreamResponse:
    """A call's snapshot, for its teller or supervisor (join token of that session, `?token=`)."""
    from cloudbank.video.recorder import recording_folder

    claims = await authenticate(request, roles=["join"], scope=None, url_token=True)  # an <img src>
    session_id, name = request.match_info["session"], request.match_info["name"]
    if claims.scope != f"session:{session_id}" or claims.get("party") not in ("teller", "supervisor"):
        raise Forbidden("only the call's teller or supervisor may see its snapshots")
    if not SNAPSHOT_NAME.match(name):
        raise NotFound("no such snapshot")
    try:
        path = recording_folder(request.app[CONFIG], session_id) / "snapshots" / name
    except ValueError:
        raise NotFound("no such snapshot") from None
    if not path.is_file():
        raise NotFound("no such snapshot")
    return web.FileResponse(path, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, no-store"})


async def _media(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    addresses = gather_addresses(config)
    networks = allowed_networks(config)
    sinks: list[SinkFactory] = app[SINKS]
    rooms = Rooms(sinks=sinks, prepare_peer=lambda pc: restrict_ice(pc, addresses, networks))
    registry = Registry(app[REDIS], app[NODE_ID], app[ADVERTISED_URL], lambda: sorted(rooms.rooms))
    app[ROOMS] = rooms
    app[REGISTRY] = registry
    beat = asyncio.create_task(registry.run(), name=f"video-registry-{app[NODE_ID]}")
    yield
    await rooms.close()  # closed in _drain already unless startup failed half way
    registry.stop()
    try:
        await asyncio.wait_for(beat, registry.heartbeat_s * 3)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("video node %s: the last heartbeat did not finish", app[NODE_ID])
    with contextlib.suppress(Exception):
        await asyncio.wait_for(registry.deregister(), 5)


async def _drain(app: web.Application) -> None:
    """SIGTERM: stop taking calls, let current ones finish up to the limit, then end the rest here,
    while the server still waits: each party is told and its socket closed, each recording closed
    (no `.part` left) and its manifest on the audit chain."""
    if REGISTRY in app:
        await app[REGISTRY].drain(app[CONFIG].video_drain_s)
        await app[ROOMS].close()


class CallSinks:
    """Everything that watches one call's packets, as one room sink: the recorder, the live
    transcript (when the node has an ASR service) and the teller's snapshots.

    On close the transcript is finished first, so its files go into the recording's manifest,
    whose hashes `finish_recording` writes to the audit chain.
    """

    def __init__(self, app: web.Application, session_id: str, request_keyframe: KeyframeRequester) -> None:
        from cloudbank.video.recorder import Recorder, recording_folder
        from cloudbank.video.snapshot import SnapshotTaker

        config = app[CONFIG]
        folder = recording_folder(config, session_id)  # refuses ids that are not plain names
        self.app = app
        self.recorder = Recorder(session_id, folder, request_keyframe, segment_s=config.recording_segment_s)
        self.snapshots = SnapshotTaker(session_id, folder, request_keyframe,
                                       audit=app[AUDIT], data_root=config.data, actor=f"video:{app[NODE_ID]}",
                                       redis=app[REDIS])
        self.transcript: Any = None
        self._rules: asyncio.Task[None] | None = None
        asr = app.get(ASR)
        if asr is not None:
            from cloudbank.video.transcript import TranscriptSink

            self.transcript = TranscriptSink(session_id, asr, app[REDIS], folder)
            self._rules = asyncio.get_running_loop().create_task(self._load_rules(asr, session_id))
        self.sinks: list[Any] = [s for s in (self.recorder, self.transcript, self.snapshots) if s is not None]
        # What signalling's `joined` tells each party (transcription.py).
        self.transcription = (self.transcript.transcription if self.transcript is not None
                              else transcription_off("unavailable" if config.video_transcribe else "disabled"))

    async def _load_rules(self, asr: AsrService, session_id: str) -> None:
        """The call's keyword rules (the catalogue now, the session's service) for its transcript."""
        from cloudbank.video.call_rules import call_spotter
        from cloudbank.video.keywords import spot_phrases

        try:
            spotter = await call_spotter(self.app[ENGINE], session_id)
            asr.update_phrases(spot_phrases(spotter.rules, self.app[CONFIG].asr_kws_threshold))
            self.transcript.set_spotter(spotter)
        except Exception:  # noqa: BLE001 - a call without keyword rules is still transcribed
            log.exception("call %s: keyword rules not loaded", session_id)

    def on_rtp(self, track: TrackInfo, packet: RtpPacket) -> None:
        for sink in self.sinks:
            try:
                sink.on_rtp(track, packet)
            except Exception:  # noqa: BLE001 - one stage failing must not stop the others
                log.exception("call %s: a packet sink failed", self.recorder.session_id)

    async def snapshot(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.snapshots.snapshot("teller")
        return result

    async def close(self) -> None:
        from cloudbank.video.recorder import finish_recording

        await self.snapshots.close()
        files = []
        if self._rules is not None:
            await self._rules
        if self.transcript is not None:
            await self.transcript.close()
            files = list(self.transcript.files)
        await self.recorder.close()  # open segments count only once closed
        if not self.recorder.segments():
            return  # nothing was recorded (no media ever flowed): no manifest
        data, who = self.app[CONFIG].data, f"video:{self.app[NODE_ID]}"
        earlier = await asyncio.to_thread(earlier_segments, self.recorder.folder,
                                          set(self.recorder.segments()), data)
        if earlier:
            # The call came here from a node that died: its closed segments are on no manifest and
            # not on the audit chain. Hash them now, in this leg's manifest and in the chain.
            await self.app[AUDIT].append(who, "recording.recovered", f"session:{self.recorder.session_id}",
                                         {"files": [{"path": e["path"], "sha256": e["sha256"]} for e in earlier]})
        await finish_recording(self.recorder, self.app[AUDIT], data, actor=who, transcripts=files,
                               extra={"earlier_segments": earlier} if earlier else None)


SEGMENT_SUFFIXES = (".webm", ".mkv")


def earlier_segments(folder: Path, own: set[Path], data_root: Path) -> list[dict[str, Any]]:
    """Complete segments in a call's folder that this leg did not write and no manifest lists: what
    an earlier leg left on a node that died (its open `.part` segment is lost, by design).
    `{path (relative to data_root), sha256, bytes, party, kind}`, sorted by name."""
    from cloudbank.platform.audit import file_sha256

    listed: set[str] = set()
    for manifest in folder.glob("manifest*.json"):
        try:
            body = json.loads(manifest.read_text(encoding="utf-8"))
            listed |= {Path(str(seg["path"])).name for t in body.get("tracks") or [] for seg in t["segments"]}
            listed |= {Path(str(seg["path"])).name for seg in body.get("earlier_segments") or []}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged manifest lists nothing: its files are hashed again here
    own_names = {p.name for p in own}
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in SEGMENT_SUFFIXES or path.name in own_names or path.name in listed:
            continue
        party, _, rest = path.name.partition("-")
        out.append({"path": str(path.resolve().relative_to(data_root.resolve())), "sha256": file_sha256(path),
                    "bytes": path.stat().st_size, "party": party, "kind": rest.partition("-")[0]})
    return out


async def _asr(app: web.Application) -> AsyncIterator[None]:
    """The node's speech recognition, when a model can be loaded (else calls are not transcribed)."""
    config = app[CONFIG]
    if not config.video_transcribe:
        yield
        return
    try:
        from cloudbank.video.asr import asr_service
        from cloudbank.video.call_rules import catalogue_rules
        from cloudbank.video.keywords import spot_phrases

        # The phrase search starts with every phrase of the catalogue (calls add any edited in since).
        phrases = spot_phrases(await catalogue_rules(app[ENGINE]), config.asr_kws_threshold)
        service = asr_service(config, phrases=phrases)
        app[ASR] = await service.__aenter__()
    except Exception as exc:  # noqa: BLE001 - no model installed: record and snapshot without it
        log.warning("video node: live transcription is off (%s)", exc)
        yield
        return
    try:
        yield
    finally:
        await service.__aexit__(None, None, None)


def default_sinks(app: web.Application) -> list[SinkFactory]:
    """The stages that watch each call's packets (recording, transcript, snapshots)."""

    def call_sinks(session_id: str, request_keyframe: KeyframeRequester) -> PacketSink:
        return CallSinks(app, session_id, request_keyframe)

    return [call_sinks]
