"""The WebRTC video node (mounted at /video/): signalling, rooms, forwarding, registry.

State lives under AppKeys: `ROOMS` (room.py), `REGISTRY` and `NODE_ID` (registry.py) and
`SINKS`, the factories that give each new room its packet sinks (recording, audio tap, snapshot).
On shutdown the node drains (no new calls; current ones get `video_drain_s` to end), then closes
every room and leaves the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from cloudbank.platform.config import Config
from cloudbank.platform.service import AUDIT, CONFIG, REDIS, service_app
from cloudbank.video.ice import allowed_networks, gather_addresses, restrict_ice
from cloudbank.video.packets import KeyframeRequester, PacketSink
from cloudbank.video.registry import NODE_ID, REGISTRY, Registry
from cloudbank.video.room import ROOMS, Rooms, SinkFactory
from cloudbank.video.signalling import video_ws

log = logging.getLogger("cloudbank.video")

SINKS = web.AppKey("video_sinks", list[SinkFactory])


def create_app(config: Config, sinks: Sequence[SinkFactory] | None = None) -> web.Application:
    """The video node. `sinks`: packet sinks per room; default: the recorder when available."""
    app = service_app(config, "video")
    app[NODE_ID] = config.video_node_id or f"video-{uuid.uuid4().hex[:12]}"
    app[SINKS] = list(sinks) if sinks is not None else default_sinks(app)
    app.cleanup_ctx.append(_media)
    app.on_shutdown.append(_drain)
    app.router.add_get("/ws", video_ws)
    return app


async def _media(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    addresses = gather_addresses(config)
    networks = allowed_networks(config)
    sinks: list[SinkFactory] = app[SINKS]
    rooms = Rooms(sinks=sinks, prepare_peer=lambda pc: restrict_ice(pc, addresses, networks))
    registry = Registry(app[REDIS], app[NODE_ID], f"{config.base_url}/video/", lambda: sorted(rooms.rooms))
    app[ROOMS] = rooms
    app[REGISTRY] = registry
    beat = asyncio.create_task(registry.run(), name=f"video-registry-{app[NODE_ID]}")
    yield
    await rooms.close()
    registry.stop()
    try:
        await asyncio.wait_for(beat, registry.heartbeat_s * 3)
    except (TimeoutError, asyncio.CancelledError):
        log.warning("video node %s: the last heartbeat did not finish", app[NODE_ID])
    with contextlib.suppress(Exception):
        await asyncio.wait_for(registry.deregister(), 5)


async def _drain(app: web.Application) -> None:
    """SIGTERM: stop taking calls, let current ones finish up to the limit."""
    if REGISTRY in app:
        await app[REGISTRY].drain(app[CONFIG].video_drain_s)


class _RecordingSink:
    """The recorder as a room sink: on close, the manifest is written and its hashes audited."""

    def __init__(self, app: web.Application, session_id: str, request_keyframe: KeyframeRequester) -> None:
        from cloudbank.video.recorder import Recorder, recording_folder

        self.app = app
        self.recorder = Recorder(session_id, recording_folder(app[CONFIG], session_id), request_keyframe)

    def on_rtp(self, track: Any, packet: Any) -> None:
        self.recorder.on_rtp(track, packet)

    async def close(self) -> None:
        from cloudbank.video.recorder import finish_recording

        if not self.recorder.segments():
            await self.recorder.close()
            return
        await finish_recording(self.recorder, self.app[AUDIT], self.app[CONFIG].data,
                               actor=f"video:{self.app[NODE_ID]}")


def default_sinks(app: web.Application) -> list[SinkFactory]:
    """The stages that watch each call's packets, when their modules exist on this install."""
    factories: list[SinkFactory] = []
    try:
        import cloudbank.video.recorder  # noqa: F401
    except ModuleNotFoundError:
        return factories

    def recording(session_id: str, request_keyframe: KeyframeRequester) -> PacketSink:
        return _RecordingSink(app, session_id, request_keyframe)

    factories.append(recording)
    return factories
