"""Running services: one aiohttp server whose sub-applications are the services' `create_app`s.

`cloudbank up` mounts all five on one port; `cloudbank platform|video|media|seat` mounts one.
The embedded Redis (when no URL is configured) lives exactly as long as the server.

SIGTERM (or SIGINT): first each service's `DRAIN`, with the port still open (the video node says
`draining` in the registry, refuses new calls with 409 while its current ones go on and may
rejoin, up to `video_drain_s`); then the port closes; the HTTP requests being handled get up to
`HANDLER_GRACE_S` to finish, their bodies still read (aiohttp's own shutdown stops reading, so a
body still arriving would hang until cut); then the services' `on_shutdown` run, every WebSocket
still open is closed with 1001 (going away: clients reconnect elsewhere and resume), and the
services' `cleanup_ctx` close their resources. Another signal meanwhile is ignored: the recordings
and records being closed are worth the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, web

from cloudbank.platform import tls
from cloudbank.platform.config import Config
from cloudbank.platform.errors import StartupError
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.redis_pool import redis_for
from cloudbank.platform.service import Handler, allowed_sites, json_errors, web_policy
from cloudbank.platform.static_files import COMMON
from cloudbank.platform.web_security import protect, websocket_origins

FAVICON = COMMON / "favicon.svg"

log = logging.getLogger("cloudbank.server")

# After on_shutdown, how long requests still being handled may take before they are cancelled.
HANDLER_GRACE_S = 10.0
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("open_websockets")
# A service's work on SIGTERM while its port is still open (set on the service's own app).
DRAIN: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("drain")
SERVICES: web.AppKey[list[web.Application]] = web.AppKey("mounted_services")


class InFlight:
    """The HTTP requests (not WebSockets) being handled, so a stop can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        self.count += 1
        self.idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self.idle.set()


IN_FLIGHT = web.AppKey("in_flight_requests", InFlight)


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
    in_flight = InFlight()
    root = web.Application(middlewares=[in_flight.middleware, json_errors, websocket_origins(allowed_sites(config))],
                           client_max_size=1024 * 1024)
    root[IN_FLIGHT] = in_flight
    root[SERVICES] = []
    protect(root, web_policy(config))
    for name in services:
        mount = table[name]
        factory = mount.beside_platform if mount.beside_platform and "platform" in services else mount.factory
        root[SERVICES].append(factory(config))
        root.add_subapp(mount.prefix, root[SERVICES][-1])

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
    root[SOCKETS] = weakref.WeakSet()
    root.on_response_prepare.append(_track_socket)
    root.on_shutdown.append(_close_sockets)  # after the services' own (added with their subapps)
    return root


async def _track_socket(request: web.Request, response: web.StreamResponse) -> None:
    """Every WebSocket of every service, as it opens (the root sees every reply being prepared)."""
    if isinstance(response, web.WebSocketResponse):
        request.config_dict[SOCKETS].add(response)


async def _close_sockets(root: web.Application) -> None:
    """Close the sockets still open after the services' shutdown: their handlers would otherwise
    hold the server until HANDLER_GRACE_S and be cancelled half way."""
    sockets = [ws for ws in root[SOCKETS] if not ws.closed]
    if sockets:
        log.info("closing %d open WebSockets", len(sockets))
        await asyncio.wait([asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping"))
                            for ws in sockets], timeout=5)


def check_data_folder(config: Config) -> None:
    try:
        config.data.mkdir(parents=True, exist_ok=True)
        probe = config.data / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data folder {config.data} is not writable ({exc.strerror}); "
                           f"choose another with --data or CLOUDBANK_DATA") from None


async def check_redis(config: Config) -> None:
    """Redis answers at start: at its URL, or the master the sentinels name."""
    client = redis_for(config, max_connections=2, socket_timeout=3)
    where = (f"Redis master {config.redis_master!r} of sentinels {','.join(config.redis_sentinels)}"
             if config.redis_sentinels else f"Redis at {config.redis_url}")
    setting = ("CLOUDBANK_REDIS_SENTINELS and CLOUDBANK_REDIS_MASTER" if config.redis_sentinels
               else "CLOUDBANK_REDIS_URL")
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise StartupError(f"{where} does not answer ({type(exc).__name__}: {exc}); check {setting}") from None
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


async def _finish_requests(runner: web.AppRunner, in_flight: InFlight) -> None:
    """Close the port, then let the requests being handled finish (bounded) before aiohttp's own
    shutdown, which would stop reading the bodies still on their way."""
    for site in list(runner.sites):
        await site.stop()
    if in_flight.count:
        log.info("waiting for %d requests being handled", in_flight.count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(in_flight.idle.wait(), HANDLER_GRACE_S)


async def serve(config: Config, services: list[str],
                on_ready: Callable[[Config], Awaitable[None]] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut the services down cleanly."""
    root = build_root(config, services)
    runner = web.AppRunner(root, handle_signals=False, access_log=None, shutdown_timeout=HANDLER_GRACE_S)
    await runner.setup()
    try:
        ssl_context = tls.server_context(config)
    except tls.TlsError as exc:
        await runner.cleanup()
        raise StartupError(str(exc)) from None
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        raise StartupError(f"port {config.port} on {config.host} {why}; choose another with --port") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("already stopping: finishing current calls and closing recordings first")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        if on_ready is not None:
            await on_ready(config)
        await stop.wait()
        log.info("stopping")
    finally:
        started = loop.time()
        await asyncio.gather(*(app[DRAIN]() for app in root[SERVICES] if DRAIN in app))
        await _finish_requests(runner, root[IN_FLIGHT])
        await runner.cleanup()  # the signal handlers stay: a second signal must not cut this short
        log.info("stopped in %.1f s", loop.time() - started)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
