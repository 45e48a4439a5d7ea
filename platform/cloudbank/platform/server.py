"""Running services: one aiohttp server whose sub-applications are the services' `create_app`s.

`cloudbank up` mounts all five on one port; `cloudbank platform|video|media|seat` mounts one.
The embedded Redis (when no URL is configured) lives exactly as long as the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio
from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.errors import StartupError
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.service import allowed_sites, json_errors, web_policy
from cloudbank.platform.static_files import COMMON
from cloudbank.platform.web_security import protect, websocket_origins

FAVICON = COMMON / "favicon.svg"

log = logging.getLogger("cloudbank.server")


@dataclass(frozen=True)
class Mount:
    prefix: str
    title: str
    factory: Callable[[Config], web.Application]
    # The factory when mounted beside the platform on one origin (`cloudbank up`), if it differs.
    beside_platform: Callable[[Config], web.Application] | None = None


def mounts() -> dict[str, Mount]:
    """Every service by name. Imported here so that the CLI edge is the only place that knows all."""
    from cloudbank.kiosk_client import phone_app
    from cloudbank.media import app as media_app
    from cloudbank.platform import app as platform_app
    from cloudbank.seat import app as seat_app
    from cloudbank.video import app as video_app

    return {
        "platform": Mount("/api/", "service platform API", platform_app.create_app),
        # Beside the platform, clients reach the node at whatever address they reached the platform.
        "video": Mount("/video/", "video node (signalling)", video_app.create_app,
                       lambda config: video_app.create_app(config, same_origin=True)),
        "media": Mount("/media/", "media platform and admin console", media_app.create_app),
        "seat": Mount("/seat/", "teller seat console", seat_app.create_app),
        "phone": Mount("/phone/", "phone (H5) client", phone_app.create_app),
    }


def build_root(config: Config, services: list[str]) -> web.Application:
    """One root app with each named service mounted at its prefix."""
    table = mounts()
    # The root's own replies (the index, the icon, 404s outside every prefix) are JSON refusals with
    # the same headers as the services'; the body limit matters only for what the root itself reads.
    root = web.Application(middlewares=[json_errors, websocket_origins(allowed_sites(config))],
                           client_max_size=1024 * 1024)
    protect(root, web_policy(config))
    for name in services:
        mount = table[name]
        factory = mount.beside_platform if mount.beside_platform and "platform" in services else mount.factory
        root.add_subapp(mount.prefix, factory(config))

    async def index(_request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="{table[n].prefix}">{table[n].title}</a> <code>{table[n].prefix}</code></li>'
                        for n in services)
        return web.Response(text=f'<!doctype html><title>cloudbank</title><link rel="icon" href="/favicon.ico">'
                                 f"<h1>cloudbank</h1><ul>{links}</ul>", content_type="text/html")

    async def favicon(_request: web.Request) -> web.FileResponse:
        # The browser apps' shared icon (each links its own common/favicon.svg; this is for the rest).
        return web.FileResponse(FAVICON, headers={"Content-Type": "image/svg+xml",
                                                  "Cache-Control": "public, max-age=86400"})

    root.router.add_get("/", index)
    root.router.add_get("/favicon.ico", favicon)
    return root


def check_data_folder(config: Config) -> None:
    try:
        config.data.mkdir(parents=True, exist_ok=True)
        probe = config.data / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data folder {config.data} is not writable ({exc.strerror}); "
                           f"choose another with --data or CLOUDBANK_DATA") from None


async def check_redis(url: str) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise StartupError(f"Redis at {url} does not answer ({type(exc).__name__}: {exc}); "
                           f"check CLOUDBANK_REDIS_URL") from None
    finally:
        await client.aclose()


async def prepare_database(config: Config) -> None:
    engine = create_engine(config.effective_database_url)
    try:
        await migrate(engine)
    except StartupError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StartupError(f"database {config.effective_database_url} is unusable: {exc}; "
                           f"check CLOUDBANK_DATABASE_URL") from None
    finally:
        await engine.dispose()


async def serve(config: Config, services: list[str],
                on_ready: Callable[[Config], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut the services down cleanly."""
    root = build_root(config, services)
    runner = web.AppRunner(root, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        raise StartupError(f"port {config.port} on {config.host} {why}; choose another with --port") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if on_ready is not None:
            await on_ready(config)
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
