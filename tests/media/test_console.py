"""The admin console in headless Chromium: sign in, upload an image, build a playlist, and a second
admin approves it (maker-checker); the kiosk endpoint then serves it. Plus static checks of the
console's string tables, CSP and test ids. Run inside `unshare -n` so nothing leaves loopback."""

from __future__ import annotations

import re
import socket
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright, expect

from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.server import build_root

STATIC = Path(__file__).parents[2] / "media" / "cloudbank" / "media" / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
PASSWORD = "correct-horse-battery"
KEY_RE = re.compile(r'^\s*"([a-z_.]+)":', re.M)


def table_keys(lang: str) -> set[str]:
    return set(KEY_RE.findall((STATIC / "i18n" / f"{lang}.js").read_text(encoding="utf-8")))


def test_string_tables_have_the_same_keys_and_cover_the_code() -> None:
    en, zh = table_keys("en"), table_keys("zh")
    assert en == zh, f"only in en: {sorted(en - zh)}; only in zh: {sorted(zh - en)}"
    used: set[str] = set()
    for js in (STATIC / "js").glob("*.js"):
        used |= set(re.findall(r'\bt\("([a-z_.]+)"', js.read_text(encoding="utf-8")))
    assert used - en == set(), f"strings used but not in the tables: {sorted(used - en)}"


def test_every_control_has_a_test_id_and_no_inline_code() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in html and not re.search(r"\son[a-z]+=", html)  # no inline script or handlers
    for js in (STATIC / "js").glob("*.js"):
        text = js.read_text(encoding="utf-8")
        assert ".innerHTML" not in text and "eval(" not in text, js.name
        for tag in re.findall(r'h\("(button|input|select)", \{([^}]*)', text):
            assert "testid" in tag[1], f"{js.name}: a {tag[0]} without a data-testid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def deployment(config: Config) -> AsyncIterator[tuple[str, Config]]:
    port = free_port()
    config = config.with_(port=port)
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    for username in ("admin1", "admin2"):
        await directory.add_user(username, "admin", display_name=username.title(), password=PASSWORD)
    await engine.dispose()
    runner = web.AppRunner(build_root(config, ["platform", "media"]), access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield config.base_url, config
    finally:
        await runner.cleanup()


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(f"{url}/media/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text(username.title())


@pytest.mark.slow
async def test_upload_build_playlist_and_a_second_admin_approves(deployment: tuple[str, Config], samples: Any,
                                                                 tmp_path: Path) -> None:
    url, config = deployment
    image = tmp_path / "spring-promo.png"
    image.write_bytes(samples.png)
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            maker = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
            page = await maker.new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            # A wrong password says so; then admin1 signs in and uploads an image.
            await page.goto(f"{url}/media/")
            await page.get_by_test_id("login-username").fill("admin1")
            await page.get_by_test_id("login-password").fill("wrong")
            await page.get_by_test_id("login-submit").click()
            await expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username or password")
            errors.clear()  # the browser logs the refused request itself
            await sign_in(page, url, "admin1")
            await expect(page.get_by_test_id("item-empty")).to_be_visible()
            await page.get_by_test_id("upload-file").set_input_files(str(image))
            await page.get_by_test_id("upload-submit").click()
            await expect(page.get_by_test_id("upload-status")).to_have_text("Uploaded spring-promo.png.")
            row = page.locator("[data-name='spring-promo.png']")
            await expect(row.get_by_test_id("item-name")).to_have_text("spring-promo.png")
            await row.get_by_test_id("item-preview-button").click()
            await expect(page.get_by_test_id("preview-image")).to_be_visible()
            assert await page.get_by_test_id("preview-image").evaluate("img => img.naturalWidth") == 64

            # Build the demo branch's playlist: it waits for another admin.
            await page.get_by_test_id("tab-playlists").click()
            await page.get_by_test_id("playlist-branch").select_option("demo")
            await page.get_by_test_id("playlist-name").fill("Spring")
            await page.locator("[data-testid^='add-item-'][data-name='spring-promo.png']").click()
            await page.get_by_test_id("draft-duration-0").fill("12")
            await page.get_by_test_id("draft-duration-0").dispatch_event("change")
            await page.get_by_test_id("playlist-submit").click()
            card = page.get_by_test_id("playlist-demo")
            await expect(card).to_have_attribute("data-pending", "1")
            await expect(card.get_by_test_id("own-change")).to_be_visible()
            await expect(card.get_by_test_id("approve-version")).to_have_count(0)  # the maker cannot approve

            # The kiosk endpoint serves nothing yet.
            served = await kiosk_playlist(url, config)
            assert served["items"] == []

            # admin2, in another browser, approves.
            checker = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
            page2 = await checker.new_page()
            page2.set_default_timeout(10_000)
            page2.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page2.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await sign_in(page2, url, "admin2")
            await page2.get_by_test_id("tab-playlists").click()
            card2 = page2.get_by_test_id("playlist-demo")
            await expect(card2.get_by_test_id("version-items")).to_contain_text("spring-promo.png (12 s)")
            await card2.get_by_test_id("approve-version").click()
            await expect(card2).to_have_attribute("data-approved", "1")
            await expect(card2.get_by_test_id("playlist-live")).to_have_text("Kiosks play version 1.")
            await expect(card2.get_by_test_id("version-1")).to_have_attribute("data-state", "approved")

            served = await kiosk_playlist(url, config)
            assert [(i["name"], i["duration_s"]) for i in served["items"]] == [("spring-promo.png", 12.0)]

            # The same console in Chinese.
            await page2.get_by_test_id("language").select_option("zh")
            await expect(page2.get_by_test_id("tab-playlists")).to_have_text("播放列表")
            await expect(page2.get_by_test_id("playlist-demo").get_by_test_id("playlist-live")).to_have_text(
                "终端正在播放第 1 版。")
            assert errors == [], errors
        finally:
            await browser.close()


async def kiosk_playlist(url: str, config: Config) -> dict[str, Any]:
    """What a demo-branch kiosk is served (enrolled through the real endpoint)."""
    engine = create_engine(config.effective_database_url)
    try:
        code = await Directory(engine).create_enrolment_code("demo")
    finally:
        await engine.dispose()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/devices/enrol", json={"code": code, "name": "k"}) as resp:
            token = (await resp.json())["token"]
        async with http.get(f"{url}/media/api/kiosk/playlist", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.headers["Content-Type"].startswith("application/json")
            return dict((await resp.json())["playlist"])


async def test_console_is_served_under_a_strict_csp(deployment: tuple[str, Config]) -> None:
    url, _ = deployment
    async with aiohttp.ClientSession() as http:
        for path in ("/media/", "/media/static/js/main.js", "/media/config.json"):
            async with http.get(url + path) as resp:
                assert resp.status == 200, path
                policy = resp.headers["Content-Security-Policy"]
                assert "default-src 'none'" in policy and "script-src 'self'" in policy
                assert "unsafe" not in policy
        async with http.get(url + "/media/static/../app.py") as resp:
            assert resp.status in (403, 404)


@pytest.mark.slow
async def test_recordings_devices_and_retention_in_the_console(deployment: tuple[str, Config], tmp_path: Path,
                                                               record_into: Any) -> None:
    """A supervisor finds a real recording, plays a segment and verifies it; an admin exports it,
    sees a kiosk's heartbeat and sets the retention."""
    url, config = deployment
    manifest = await record_into(config, "console-call")
    async with aiohttp.ClientSession() as http:
        # A kiosk that has sent a heartbeat, and the recording indexed by an admin's rescan.
        engine = create_engine(config.effective_database_url)
        try:
            code = await Directory(engine).create_enrolment_code("demo")
            await Directory(engine).add_user("super1", "supervisor", display_name="Super1", password=PASSWORD)
        finally:
            await engine.dispose()
        async with http.post(f"{url}/api/devices/enrol", json={"code": code, "name": "lobby-kiosk"}) as resp:
            device = await resp.json()
        async with http.post(f"{url}/api/devices/heartbeat", headers={"Authorization": f"Bearer {device['token']}"},
                             json={"online": True, "camera_ok": True, "microphone_ok": False, "peripherals_ok": True,
                                   "app_version": "1.2.3"}) as resp:
            assert resp.status == 200
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US",
                                                accept_downloads=True)
            page = await context.new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            # Which URL was refused, so a failure names it (the console message does not).
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

            await sign_in(page, url, "admin1")
            await page.get_by_test_id("tab-recordings").click()
            await page.get_by_test_id("rescan").click()
            row = page.get_by_test_id("recording-console-call")
            await expect(row).to_have_attribute("data-state", "available")
            await page.get_by_test_id("tab-devices").click()
            kiosk = page.get_by_test_id(f"device-{device['device_id']}")
            await expect(kiosk).to_have_attribute("data-status", "online")
            await expect(kiosk).to_contain_text("1.2.3")
            await expect(kiosk).to_contain_text("Fault")  # the microphone
            await page.get_by_test_id("tab-settings").click()
            await page.get_by_test_id("retention-days").fill("90")
            await page.get_by_test_id("retention-save").click()
            await expect(page.get_by_test_id("retention-info")).to_contain_text("deleted 90 days after")
            await page.get_by_test_id("purge-now").click()
            await expect(page.get_by_test_id("purge-result")).to_have_text("0 recordings purged.")

            await page.get_by_test_id("tab-recordings").click()
            await page.get_by_test_id("recording-console-call").get_by_test_id("recording-open").click()
            async with page.expect_download() as download_info:
                await page.get_by_test_id("export-recording").click()
            download = await download_info.value
            saved = tmp_path / "export.zip"
            await download.save_as(saved)
            with zipfile.ZipFile(saved) as zf:
                assert zf.read("console-call/manifest.json") == manifest.read_bytes()
            await page.get_by_test_id("logout").click()

            # The supervisor: recordings and devices only; plays a segment and verifies the call.
            await sign_in(page, url, "super1")
            await expect(page.get_by_test_id("tab-library")).to_have_count(0)
            await expect(page.get_by_test_id("tab-settings")).to_have_count(0)
            await page.get_by_test_id("search-session").fill("console")
            await page.get_by_test_id("search-submit").click()
            await page.get_by_test_id("recording-console-call").get_by_test_id("recording-open").click()
            await page.get_by_test_id("player-play").click()
            video = page.get_by_test_id("player-video-customer")
            await expect(video).to_be_visible()
            await page.wait_for_function(
                "() => { const v = document.querySelector('[data-testid=player-video-customer]');"
                " return v && v.readyState >= 2 && v.videoWidth === 160; }", timeout=10_000)
            await page.get_by_test_id("verify-recording").click()
            # Its hashes match, but this recording holds the customer's video only: incomplete.
            await expect(page.get_by_test_id("verify-result")).to_have_attribute("data-ok", "true")
            await expect(page.get_by_test_id("verify-result")).to_have_attribute("data-status", "incomplete")
            assert errors == [], errors
        finally:
            await browser.close()
