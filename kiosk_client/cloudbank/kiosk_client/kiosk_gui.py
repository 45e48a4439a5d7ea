"""The kiosk's screen: a local web page served on loopback only, opened in the kiosk's browser.

The page (kiosk_static/, plain ES modules, sharing the phone page's modules under /shared/ and
the browser apps' common ones under /common/) shows the cached playlist when idle, the service
picker, the queue, the call, pushed forms, the signature pad and the ID card as read. The device
credential never leaves this process: the page calls the platform through `/api/...` here, which
forwards an allow-listed set of customer calls with the device token, and reads its events
through `/events`, a socket this app relays from the platform's. The video node's signalling is
reached directly with the per-call join token (short lived, scoped to one session). Requests from
another origin (a page elsewhere trying to use this kiosk's credential) are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from cloudbank.kiosk_client import forms
from cloudbank.kiosk_client.client import absolute_video
from cloudbank.kiosk_client.errors import KioskError, PlatformError, PlaylistError
from cloudbank.kiosk_client.kiosk_app import Kiosk
from cloudbank.kiosk_client.phone_app import CONTENT_SECURITY_POLICY
from cloudbank.platform.errors import BadRequest
from cloudbank.platform.service import Handler
from cloudbank.platform.static_files import COMMON, add_static
from cloudbank.platform.validation import decode_json
from cloudbank.platform.web_security import CAMERA_AND_MIC, Policy, protect

STATIC = Path(__file__).parent / "kiosk_static"
SHARED = Path(__file__).parent / "phone_static"
KIOSK = web.AppKey("kiosk", Kiosk)
# What the page may ask the platform for, with the device's token.
ALLOWED = [
    ("GET", re.compile(r"^services$")),
    ("POST", re.compile(r"^tickets$")),
    ("GET", re.compile(r"^tickets/[A-Za-z0-9_-]{1,64}$")),
    ("DELETE", re.compile(r"^tickets/[A-Za-z0-9_-]{1,64}$")),
    ("POST", re.compile(r"^tickets/[A-Za-z0-9_-]{1,64}/callback$")),
    ("POST", re.compile(r"^sessions/[A-Za-z0-9_-]{1,64}/join$")),
    ("POST", re.compile(r"^sessions/[A-Za-z0-9_-]{1,64}/responses$")),
    ("POST", re.compile(r"^sessions/[A-Za-z0-9_-]{1,64}/activate$")),
    ("POST", re.compile(r"^sessions/[A-Za-z0-9_-]{1,64}/end$")),
    ("POST", re.compile(r"^sessions/[A-Za-z0-9_-]{1,64}/rating$")),
]
MAX_BODY = 1024 * 1024
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def _kiosk(request: web.Request) -> Kiosk:
    return request.app[KIOSK]


async def state(request: web.Request) -> web.Response:
    """What the page needs to start: the platform's address, the event token and the playlist."""
    kiosk = _kiosk(request)
    items = [{"id": i.id, "kind": i.kind, "name": i.name, "duration_s": i.duration_s,
              "url": f"blobs/{i.sha256}"} for i in kiosk.cache.playable()]
    return web.json_response({"device_id": kiosk.device_id, "playlist": items,
                              "has_id_card": kiosk.options.id_card is not None},
                             headers={"Cache-Control": "no-store"})


async def blob(request: web.Request) -> web.FileResponse:
    kiosk = _kiosk(request)
    try:
        path = kiosk.cache.blob(request.match_info["sha"])
    except PlaylistError:
        raise web.HTTPNotFound() from None
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})


async def id_card(request: web.Request) -> web.Response:
    """The ID-card image as a data URL (the card reader's stand-in), for the page to send."""
    kiosk = _kiosk(request)
    if kiosk.options.id_card is None:
        raise web.HTTPNotFound()
    try:
        data = await asyncio.to_thread(forms.read_id_card, kiosk.options.id_card)
    except KioskError as exc:
        return web.json_response({"error": "id_card", "message": str(exc)}, status=409)
    return web.json_response({"data_url": forms.id_card_data_url(data)}, headers={"Cache-Control": "no-store"})


async def send_id_card(request: web.Request) -> web.Response:
    """Send the card image to the call's teller: `{session_id}`. The file is read here, so the
    image never has to pass through the page."""
    kiosk = _kiosk(request)
    try:
        body = decode_json(await request.read())
    except BadRequest as exc:
        return web.json_response(exc.to_json(), status=400)
    session_id = body.get("session_id") if isinstance(body, dict) and set(body) == {"session_id"} else None
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        return web.json_response({"error": "bad_request", "message": "send {session_id} of the current call"},
                                 status=400)
    try:
        card = await kiosk.send_id_card(session_id)
    except PlatformError as exc:  # before KioskError, its base: the platform's own refusal
        return web.json_response(exc.body or {"error": exc.code, "message": exc.message},
                                 status=exc.status if exc.status >= 400 else 502)
    except KioskError as exc:
        return web.json_response({"error": "id_card", "message": str(exc)}, status=409)
    return web.json_response({"id_card": card}, status=201)


async def proxy(request: web.Request) -> web.Response:
    kiosk = _kiosk(request)
    path = request.match_info["path"]
    if not any(request.method == m and rx.match(path) for m, rx in ALLOWED):
        return web.json_response({"error": "forbidden", "message": f"the kiosk page may not call {path[:80]}"},
                                 status=403)
    body: dict[str, Any] | None = None
    if request.method in ("POST", "PUT") and request.can_read_body:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "too_large", "message": "the body is too large"}, status=413)
        try:
            raw = decode_json(await request.read())
        except BadRequest as exc:
            return web.json_response(exc.to_json(), status=400)
        if not isinstance(raw, dict):
            return web.json_response({"error": "bad_request", "message": "send a JSON object"}, status=400)
        body = raw
    url = kiosk.client.url(path)
    lang = request.query.get("lang", "")
    if path == "services" and LANG.match(lang):  # the service names in the screen's language
        url += f"?lang={lang}"
    try:
        status, answer = await kiosk.client.exchange(request.method, url, body)
    except PlatformError as exc:
        return web.json_response(exc.body or {"error": exc.code, "message": exc.message},
                                 status=exc.status if exc.status >= 400 else 502)
    return web.json_response(answer, status=status)


def _absolute(text: str, server: str) -> str:
    """An event whose video node is named by path (`cloudbank up`: "/video/") points at the platform's
    address: the page, served here on loopback, would otherwise look for the node on this server."""
    if '"video"' not in text:
        return text
    try:
        event = json.loads(text)
    except ValueError:
        return text
    return json.dumps(absolute_video(event, server)) if isinstance(event, dict) else text


async def events(request: web.Request) -> web.WebSocketResponse:
    """Relay the kiosk's platform event stream to the page (resuming from the page's last_id)."""
    kiosk = _kiosk(request)
    last_id = request.query.get("last_id", "")[:64]
    page = web.WebSocketResponse(heartbeat=20)
    await page.prepare(request)
    query = {"token": kiosk.client.token or ""}
    if last_id:
        query["last_id"] = last_id
    url = kiosk.client.url("ws").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    try:
        upstream = await kiosk.client.http.ws_connect(f"{url}?{urlencode(query)}", heartbeat=20)
    except (aiohttp.ClientError, OSError) as exc:
        await page.send_json({"type": "error", "code": "unreachable", "message": f"the platform is unreachable: {exc}"})
        await page.close(code=1011)
        return page

    async def down() -> None:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await page.send_str(_absolute(msg.data, kiosk.client.server))
        await page.close()

    relay = asyncio.create_task(down())
    try:
        async for msg in page:
            if msg.type == aiohttp.WSMsgType.TEXT and len(msg.data) <= 16 * 1024:
                await upstream.send_str(msg.data)
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await upstream.close()
    return page


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only this page may use the kiosk's credential: refuse requests another origin makes."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return web.json_response({"error": "forbidden", "message": "cross-origin requests are refused"},
                                 status=403)
    return await handler(request)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_gui_app(kiosk: Kiosk) -> web.Application:
    # The same strict policy as the phone page: the kiosk screen runs the same modules.
    app = web.Application(client_max_size=MAX_BODY, middlewares=[same_origin])
    protect(app, Policy(CONTENT_SECURITY_POLICY, CAMERA_AND_MIC))  # served on loopback: plain http
    app[KIOSK] = kiosk
    app.router.add_get("/", index)
    app.router.add_get("/state.json", state)
    app.router.add_get("/blobs/{sha}", blob)
    app.router.add_get("/id-card.json", id_card)
    app.router.add_post("/id-card/send", send_id_card)
    app.router.add_get("/events", events)
    app.router.add_route("*", "/api/{path:.*}", proxy)
    add_static(app, "/static/", STATIC)
    add_static(app, "/shared/", SHARED)
    add_static(app, "/common/", COMMON)  # i18n.js
    return app


async def serve_gui(kiosk: Kiosk, stop: asyncio.Event) -> None:
    """Serve the page on 127.0.0.1 until `stop`; re-syncs the playlist every few minutes."""
    runner = web.AppRunner(create_gui_app(kiosk), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", kiosk.options.gui_port)
    await site.start()
    port = runner.addresses[0][1]
    kiosk.step(f"screen ready: open http://127.0.0.1:{port}/ in the kiosk browser")
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 300)
            except TimeoutError:
                await kiosk.sync_playlist()
    finally:
        await runner.cleanup()
