"""The kiosk screen: its local server (allow-listed proxy, same-origin only, verified blobs) and the
page in headless Chromium against the real platform and video node, with an SDK teller."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.forms import MAX_ID_CARD_BYTES
from cloudbank.kiosk_client.kiosk_app import Kiosk, KioskOptions
from cloudbank.kiosk_client.kiosk_gui import create_gui_app
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.kiosk_client.playlist import PlaylistCache, PlaylistSync
from cloudbank.platform import events
from cloudbank.platform.service import redis_client

from .conftest import READ_STAMP, Stack, Teller, until

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
MakeServer = Callable[..., Awaitable[TestServer]]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]


def _png(color: int, size: tuple[int, int] = (160, 90)) -> bytes:
    ok, data = cv2.imencode(".png", np.full((size[1], size[0], 3), color, dtype=np.uint8))
    assert ok
    return bytes(data.tobytes())


async def _cache_playlist(aiohttp_server: MakeServer, cache: PlaylistCache, blobs: list[bytes]) -> None:
    """Fill the kiosk's cache from a stand-in of the media platform's kiosk endpoints."""
    items = [{"id": f"item{i}", "kind": "image", "name": f"promo {i}", "sha256": hashlib.sha256(b).hexdigest(),
              "size": len(b), "url": f"/media/api/blobs/{hashlib.sha256(b).hexdigest()}", "duration_s": 2}
             for i, b in enumerate(blobs)]
    by_sha = {hashlib.sha256(b).hexdigest(): b for b in blobs}
    app = web.Application()

    async def playlist(_request: web.Request) -> web.Response:
        return web.json_response({"playlist": {"id": "p", "version": 1, "items": items}})

    app.router.add_get("/media/api/kiosk/playlist", playlist)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=by_sha[request.match_info["sha"]])

    app.router.add_get("/media/api/blobs/{sha}", blob)
    server = await aiohttp_server(app)
    client = PlatformClient(str(server.make_url("")).rstrip("/"), token="t")
    await PlaylistSync(client, cache).sync()
    await client.close()


@pytest.fixture
async def kiosk(stack: Stack, tmp_path: Path) -> AsyncIterator[Kiosk]:
    card = tmp_path / "card.png"
    card.write_bytes(_png(200, (340, 214)))
    k = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "kiosk", id_card=card, ice_addresses=("127.0.0.1",),
                           enrol_code=await stack.directory.create_enrolment_code("demo")))
    await k.start()
    yield k
    await k.close()


async def test_proxy_allows_only_customer_calls_and_refuses_bad_bodies(
        kiosk: Kiosk, aiohttp_client: MakeClient) -> None:
    gui = await aiohttp_client(create_gui_app(kiosk))
    assert (await gui.get("/api/services")).status == 200
    for method, path in (("GET", "/api/devices"), ("POST", "/api/teller/state"), ("POST", "/api/login"),
                         ("GET", "/api/tickets/../devices"), ("POST", "/api/sessions/x/push")):
        resp = await gui.request(method, path, json={})
        assert resp.status in (403, 404), (method, path)
    bad = await gui.post("/api/tickets", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status == 400
    assert (await gui.post("/api/tickets", json=["general"])).status == 400
    unknown = await gui.post("/api/tickets", json={"service": "general", "x": 1})
    assert unknown.status == 400 and "unknown field" in (await unknown.json())["message"]
    huge = await gui.post("/api/tickets", json={"service": "s" * (2 * 1024 * 1024)})
    assert huge.status == 413
    cross = await gui.post("/api/tickets", json={"service": "general"}, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    # None of that created a ticket: the first real one goes through.
    ok = await gui.post("/api/tickets", json={"service": "general"})
    assert ok.status == 201, await ok.text()
    state = await (await gui.get("/state.json")).json()
    assert "token" not in state and state["device_id"] == kiosk.device_id
    for path in ("/blobs/../device.json", "/blobs/" + "0" * 64, "/blobs/device.json", "/static/../device.json"):
        assert (await gui.get(path)).status in (403, 404), path
    card = await gui.get("/id-card.json")
    assert card.status == 200 and (await card.json())["data_url"].startswith("data:image/png;base64,")


@pytest.mark.slow
async def test_kiosk_screen_idle_playlist_then_a_call(
        stack: Stack, teller: Teller, kiosk: Kiosk, aiohttp_server: MakeServer) -> None:
    await _cache_playlist(aiohttp_server, kiosk.cache, [_png(30), _png(220)])
    gui = await aiohttp_server(create_gui_app(kiosk))
    call = None
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True,
                                            permissions=["camera", "microphone"])
        page = await context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # The screen is served under the phone page's strict policy: nothing it does may be refused.
        page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
        try:
            await page.goto(str(gui.make_url("/")))
            assert "default-src 'none'" in (await page.request.get(str(gui.make_url("/")))).headers[
                "content-security-policy"]
            # Idle: the cached playlist plays, item after item, from the verified cache.
            item = page.get_by_test_id("playlist-item")
            await expect(item).to_have_attribute("data-item", "item0")
            assert await item.evaluate("(img) => img.complete && img.naturalWidth") == 160
            await expect(item).to_have_attribute("data-item", "item1", timeout=5000)

            await page.get_by_test_id("start").tap()
            await page.get_by_test_id("service-general").tap()
            await expect(page.get_by_test_id("screen-wait")).to_be_visible()
            await expect(page.get_by_test_id("queue-position")).not_to_have_text("-")

            session_id, grant = await teller.accept_next(timeout=30)
            call = Call(grant, synthetic(44), ice_addresses=["127.0.0.1"])
            await call.join()
            await expect(page.get_by_test_id("call-state")).to_have_attribute("data-state", "connected", timeout=20_000)
            await call.wait_for(lambda: call.remote.frames["video"] >= 15, 30)
            stamp = None
            for _ in range(100):
                stamp = await page.evaluate(READ_STAMP)
                if stamp:
                    break
                await page.wait_for_timeout(50)
            assert stamp is not None and stamp[0] == 44

            await page.get_by_test_id("read-id-card").tap()
            await expect(page.get_by_test_id("id-card-preview")).to_be_visible()
            # In a call the button also sends the card: the teller hears of it and can fetch it.
            await expect(page.get_by_test_id("id-card-status")).to_have_text("Your ID card was sent to the teller.")
            await until(lambda: bool(teller.of_type("id_card")), what="the ID card at the teller")
            assert teller.of_type("id_card")[0]["session_id"] == session_id

            await teller.push(session_id, {"kind": "form", "title": "Confirm", "fields": [
                {"name": "amount", "label": "Amount", "value": "100", "required": True}]})
            await page.get_by_test_id("push-confirm").tap()
            await until(lambda: bool(teller.of_type("push.response")), what="the form answer")
            assert teller.of_type("push.response")[0]["values"] == {"amount": "100"}

            await page.get_by_test_id("hang-up").tap()
            await expect(page.get_by_test_id("screen-done")).to_be_visible()
            await until(lambda: bool(teller.of_type("session.ended")), what="the teller hearing the hang-up")
            await page.get_by_test_id("done").tap()
            await expect(page.get_by_test_id("screen-idle")).to_be_visible()
            assert errors == []
        finally:
            await context.close()
            await browser.close()
            if call is not None:
                await call.leave()
                call.sources.stop()


async def test_events_relay_resumes_and_refuses_other_origins(
        kiosk: Kiosk, aiohttp_client: MakeClient, stack: Stack) -> None:
    gui = await aiohttp_client(create_gui_app(kiosk))
    refused = await gui.get("/events", headers={"Origin": "http://evil.example"})
    assert refused.status == 403
    redis = redis_client(stack.config.redis_url or "")
    try:
        ws = await gui.ws_connect("/events")
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello"
        await events.publish(redis, f"device:{kiosk.device_id}", {"type": "ticket.update", "n": 1})
        first = await ws.receive_json(timeout=10)
        assert first["n"] == 1
        await ws.close()
        await events.publish(redis, f"device:{kiosk.device_id}", {"type": "ticket.update", "n": 2})
        again = await gui.ws_connect(f"/events?last_id={first['stream_id']}")
        assert (await again.receive_json(timeout=10))["type"] == "hello"
        assert (await again.receive_json(timeout=10))["n"] == 2
        await again.close()
    finally:
        await redis.aclose()


async def test_id_card_errors_are_clear(kiosk: Kiosk, aiohttp_client: MakeClient) -> None:
    gui = await aiohttp_client(create_gui_app(kiosk))
    assert kiosk.options.id_card is not None
    kiosk.options.id_card.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_ID_CARD_BYTES)
    too_big = await gui.get("/id-card.json")
    assert too_big.status == 409 and "at most" in (await too_big.json())["message"]
    kiosk.options.id_card.unlink()
    missing = await gui.get("/id-card.json")
    assert missing.status == 409 and "cannot read" in (await missing.json())["message"]
    # The heartbeat reports the reader's trouble.
    assert kiosk.heartbeat is not None
    assert kiosk.heartbeat.status().details == {"id_card_reader": f"{kiosk.options.id_card} is missing"}


async def test_sending_the_id_card_refuses_bad_bodies_and_sessions_not_its_own(
        kiosk: Kiosk, aiohttp_client: MakeClient, stack: Stack) -> None:
    gui = await aiohttp_client(create_gui_app(kiosk))
    for body in (b"{not json", b"[]", b'{"session_id": 5}', b'{"session_id": "../devices"}',
                 b'{"session_id": "' + b"a" * 100 + b'"}', b'{"session_id": "x", "side": "back"}'):
        resp = await gui.post("/id-card/send", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, body
    # A well-formed id of no call of this kiosk: the platform's 404 comes through, nothing is stored.
    unknown = await gui.post("/id-card/send", json={"session_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12})
    assert unknown.status == 404
    cross = await gui.post("/id-card/send", json={"session_id": "x"}, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    assert not (stack.config.data / "id_cards").exists()


@pytest.mark.slow
async def test_the_screen_carries_on_with_a_visit_still_in_the_queue(
        stack: Stack, kiosk: Kiosk, aiohttp_server: MakeServer) -> None:
    # The page reloaded (or the app restarted) while its customer waited: the ticket is still live,
    # and the platform refuses a second one. The screen follows the held ticket instead of telling
    # whoever stands there "you already have a ticket; leave it first".
    gui = await aiohttp_server(create_gui_app(kiosk))
    held = await kiosk.client.create_ticket("general")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=True)
                          ).new_page()
            page.set_default_timeout(15_000)
            await page.goto(str(gui.make_url("/")))
            await page.get_by_test_id("start").tap()
            await page.get_by_test_id("service-general").tap()
            await expect(page.get_by_test_id("screen-wait")).to_be_visible()
            await expect(page.get_by_test_id("error")).to_be_empty()
            await expect(page.get_by_test_id("queue-position")).to_have_text(str(held["position"]))
            await page.get_by_test_id("leave-queue").tap()
            await expect(page.get_by_test_id("done-message")).to_have_text("You left the queue.")
            assert (await kiosk.client.ticket(held["id"]))["state"] == "abandoned"
        finally:
            await browser.close()


async def test_every_reply_of_the_screen_carries_the_security_headers(kiosk: Kiosk, aiohttp_client: MakeClient
                                                                     ) -> None:
    gui = await aiohttp_client(create_gui_app(kiosk))
    replies = [await gui.get("/"), await gui.get("/state.json"), await gui.get("/static/kiosk.js"),
               await gui.get("/shared/js/api.js"), await gui.get("/no/such/page"), await gui.delete("/state.json"),
               await gui.get("/events", headers={"Origin": "http://evil.example"})]
    assert [r.status for r in replies] == [200, 200, 200, 200, 404, 405, 403]
    for resp in replies:
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, resp.url
        assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["Server"] == "cloudbank"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "camera=(self)" in resp.headers["Permissions-Policy"]
        assert "Strict-Transport-Security" not in resp.headers  # plain http on loopback
