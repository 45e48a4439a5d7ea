"""The media platform and its admin console (mounted at /media/).

    GET  /                          the admin console (static ES modules under a strict CSP)
    GET  /config.json               where the console finds the platform API (sign-in, devices)
    /api/items, /api/blobs/<sha>, /api/branches, /api/playlists/..., /api/kiosk/playlist   media_api
    /api/recordings/..., /api/settings, /api/retention/purge                              recordings_api

Recordings are indexed as they finish (`indexer`: the audit chain's `recording.finished` records,
followed about once a second); a housekeeping task also indexes any it missed and runs the retention
purge every few minutes. On several media nodes each does it, and the catalogue's conditional
updates keep that idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from cloudbank.media import media_api, recordings_api
from cloudbank.media.indexer import FinishedRecordings
from cloudbank.media.probe import Durations
from cloudbank.media.recordings import RecordingsCatalogue
from cloudbank.media.retention import purge_expired
from cloudbank.platform.config import Config
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, service_app
from cloudbank.platform.static_files import add_static_app
from cloudbank.platform.web_security import page_csp

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
HOUSEKEEPING_INTERVAL_S = 300.0
STOP_TIMEOUT_S = 30.0  # at shutdown, how long a housekeeping pass under way may take to finish
HOUSEKEEPING = web.AppKey("media_housekeeping", asyncio.Task[None])
FOLLOWER = web.AppKey("media_recordings_follower", asyncio.Task[None])

# Previews and players show blobs fetched with the admin's token, or recordings by URL.
CONTENT_SECURITY_POLICY = page_csp(connect="'self'", media="'self' blob:")


async def housekeeping_once(app: web.Application) -> None:
    """Index recordings that appeared since the last run, then purge what the retention period expired."""
    catalogue = RecordingsCatalogue(app[ENGINE], app[CONFIG].data)
    result = await catalogue.scan(only_new=True)
    if result.indexed:
        log.info("recordings: indexed %d new", len(result.indexed))
    for name, problem in result.unreadable.items():
        log.warning("recordings: %s has an unreadable manifest (%s)", name, problem)
    purged = await purge_expired(catalogue, app[AUDIT], app[ENGINE], "media:retention")
    if purged:
        log.info("retention: purged %d recordings", len(purged))


async def _housekeeping_loop(app: web.Application, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await housekeeping_once(app)
        except Exception:  # a bad run is logged; the next one tries again
            log.exception("media housekeeping failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_INTERVAL_S)


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    # Where the audit chain ends now, before the first scan: nothing finishing in between is missed.
    follower = FinishedRecordings(app[ENGINE], RecordingsCatalogue(app[ENGINE], app[CONFIG].data))
    await follower.start()
    stop = asyncio.Event()
    app[HOUSEKEEPING] = asyncio.create_task(_housekeeping_loop(app, stop), name="media-housekeeping")
    app[FOLLOWER] = asyncio.create_task(follower.follow(stop), name="media-recordings-follower")
    yield
    # Let a pass under way finish (a purge deletes files, then writes the catalogue and the audit
    # chain): cancelled half way it would leave them disagreeing. Cancelled only past the limit.
    stop.set()
    tasks = {app[FOLLOWER], app[HOUSEKEEPING]}
    _, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in late:
        log.warning("%s did not finish within %s s; cancelled", task.get_name(), STOP_TIMEOUT_S)
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _client_config(_request: web.Request) -> web.Response:
    return web.json_response({"api": "/api/", "heartbeat_stale_s": 120}, headers={"Cache-Control": "no-cache"})


def create_app(config: Config) -> web.Application:
    # Uploads stream to the store under their own limit (max_upload_bytes); every other body is small.
    app = service_app(config, "media", csp=CONTENT_SECURITY_POLICY)
    app.cleanup_ctx.append(_housekeeping)  # after service_app's resources: it needs the database
    app.router.add_get("/config.json", _client_config)
    app[media_api.DURATIONS] = Durations()
    app.add_routes(media_api.routes)
    app.add_routes(recordings_api.routes)
    add_static_app(app, STATIC)
    return app
