"""Every browser app has an icon and loads without a 404: the seat console, the media console, the
phone page, the kiosk screen and the root index (issue 14: "Favicons 404")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Response, async_playwright

from cloudbank.kiosk_client.kiosk_app import Kiosk, KioskOptions
from cloudbank.kiosk_client.kiosk_gui import create_gui_app
from cloudbank.platform.server import build_root

from .conftest import Stack
from .screens import ARGS, CHROMIUM, KIOSK

pytestmark = pytest.mark.slow
MakeServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def test_every_browser_app_serves_its_icon_and_nothing_404s(
        stack: Stack, tmp_path: Path, aiohttp_server: MakeServer, browser: Browser) -> None:
    kiosk = Kiosk(KioskOptions(server=stack.url, data=tmp_path / "kiosk", ice_addresses=("127.0.0.1",),
                               enrol_code=await stack.directory.create_enrolment_code("demo")))
    await kiosk.start()
    gui = await aiohttp_server(create_gui_app(kiosk))
    consoles = await aiohttp_server(build_root(stack.config, ["media", "seat"]))
    pages = {"phone": stack.url + "/phone/", "root": stack.url + "/", "kiosk": str(gui.make_url("/")),
             "seat": str(consoles.make_url("/seat/")), "media": str(consoles.make_url("/media/"))}
    context = await browser.new_context(viewport=KIOSK)
    try:
        for app, url in pages.items():
            page = await context.new_page()
            failed: list[str] = []

            def note(resp: Response, failed: list[str] = failed) -> None:
                if resp.status >= 400:
                    failed.append(f"{resp.status} {resp.url}")

            page.on("response", note)
            await page.goto(url)
            await page.wait_for_load_state("networkidle")
            icon = await page.evaluate("() => document.querySelector('link[rel=icon]')?.href")
            assert icon, f"{app}: no <link rel=icon>"
            # Headless Chromium does not fetch icons itself: fetch the one the page names.
            got = await page.request.get(icon)
            assert got.status == 200 and got.headers["content-type"].startswith("image/svg+xml"), (app, icon)
            assert (await got.body()).startswith(b"<svg"), (app, icon)
            if app in ("root", "phone"):  # what a browser asks for when a page names no icon
                plain = await page.request.get(stack.url + "/favicon.ico")
                assert plain.status == 200, "/favicon.ico"
            assert failed == [], f"{app}: {failed}"
            await page.close()
    finally:
        await context.close()
        await kiosk.close()
