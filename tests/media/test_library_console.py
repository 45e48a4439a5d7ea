"""The media console's library and playlists as an admin meets them (issue 14, point 8): a refusal's
banner clears once a later upload succeeds, uploads show progress, items can be deleted (refused
while a playlist uses them, audited), a video's playlist entry defaults to its real length, entries
move up and down through labelled buttons, and the approving admin sees who proposed the change.
Headless Chromium against platform + media on a real socket; run inside `unshare -n`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from cloudbank.platform.audit import AuditChain
from cloudbank.platform.records import create_engine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
PASSWORD = "correct-horse-battery"

pytestmark = pytest.mark.slow


async def sign_in(page: Page, url: str, username: str, name: str) -> None:
    await page.goto(f"{url}/media/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text(name)


async def upload(page: Page, path: Path) -> None:
    await page.get_by_test_id("upload-file").set_input_files(str(path))
    await page.get_by_test_id("upload-submit").click()


async def test_library_and_playlists_as_an_admin_meets_them(call_deployment: Any, tmp_path: Path,
                                                            samples: Any) -> None:
    dep = call_deployment
    clip = tmp_path / "five-seconds.webm"
    clip.write_bytes(samples.webm_5s)
    poster = tmp_path / "poster.png"
    poster.write_bytes(samples.png)
    leaflet = tmp_path / "leaflet.pdf"
    leaflet.write_bytes(samples.pdf)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a media file")
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            await sign_in(page, dep.url, "admin1", "Admin One")

            # A refused upload says so; the next, successful upload clears that banner and shows progress.
            await upload(page, notes)
            notice = page.get_by_test_id("notice")
            await expect(notice).to_contain_text("Refused (415)")
            await upload(page, clip)
            await expect(page.get_by_test_id("upload-status")).to_have_text("Uploaded five-seconds.webm.")
            await expect(notice).to_be_hidden()
            progress = page.get_by_test_id("upload-progress")
            await expect(progress).to_have_attribute("data-percent", "100")
            assert await progress.get_attribute("aria-label") == "Upload progress"
            for path in (poster, leaflet):
                await upload(page, path)
                await expect(page.get_by_test_id("upload-status")).to_have_text(f"Uploaded {path.name}.")

            # The playlist: the video defaults to its own 5 s, the image to 10 s; both move both ways.
            await page.get_by_test_id("tab-playlists").click()
            await page.get_by_test_id("playlist-branch").select_option("demo")
            await page.get_by_test_id("playlist-name").fill("Lobby")
            await page.locator("[data-testid^='add-item-'][data-name='five-seconds.webm']").click()
            await page.locator("[data-testid^='add-item-'][data-name='poster.png']").click()
            await expect(page.get_by_test_id("draft-duration-0")).to_have_value("5")
            await expect(page.get_by_test_id("draft-duration-1")).to_have_value("10")
            down = page.get_by_role("button", name="Move five-seconds.webm down")
            await expect(down).to_have_text("↓ Down")
            await down.click()
            await expect(page.get_by_test_id("draft-0")).to_contain_text("poster.png")
            await expect(page.get_by_test_id("draft-1")).to_contain_text("five-seconds.webm")
            await expect(page.get_by_test_id("draft-down-1")).to_be_disabled()
            await page.get_by_role("button", name="Move five-seconds.webm up").click()
            await expect(page.get_by_test_id("draft-0")).to_contain_text("five-seconds.webm")
            await page.get_by_test_id("playlist-submit").click()
            card = page.get_by_test_id("playlist-demo")
            await expect(card).to_have_attribute("data-pending", "1")
            await expect(card.get_by_test_id("version-made-by")).to_contain_text("proposed by you")

            # The checker sees who proposed it, then approves.
            page2 = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
            page2.set_default_timeout(10_000)
            await sign_in(page2, dep.url, "admin2", "Admin Two")
            await page2.get_by_test_id("tab-playlists").click()
            card2 = page2.get_by_test_id("playlist-demo")
            await expect(card2.get_by_test_id("version-made-by")).to_contain_text("proposed by Admin One (admin1)")
            await expect(card2.get_by_test_id("version-items")).to_have_text(
                "five-seconds.webm (5 s) · poster.png (10 s)")
            await card2.get_by_test_id("approve-version").click()
            await expect(card2).to_have_attribute("data-approved", "1")

            # Deleting: refused for the video the approved playlist plays, done for the unused PDF.
            await page.get_by_test_id("tab-library").click()
            video_row = page.locator("tr[data-name='five-seconds.webm']")
            await video_row.get_by_role("button", name="Delete five-seconds.webm").click()
            await video_row.get_by_test_id("item-delete-confirm").click()
            await expect(notice).to_contain_text("Refused (409): five-seconds.webm is in use: Lobby (demo), version 1")
            await expect(video_row).to_have_count(1)
            pdf_row = page.locator("tr[data-name='leaflet.pdf']")
            pdf_id = (await pdf_row.get_attribute("data-testid") or "").removeprefix("item-")
            await pdf_row.get_by_test_id("item-delete").click()
            await pdf_row.get_by_test_id("item-delete-confirm").click()
            await expect(notice).to_have_text("Deleted leaflet.pdf.")
            await expect(pdf_row).to_have_count(0)
            assert errors == [], errors
        finally:
            await browser.close()
    engine = create_engine(dep.config.effective_database_url)
    try:
        records = await AuditChain(engine).records(subject=f"media:{pdf_id}")
    finally:
        await engine.dispose()
    assert [r.action for r in records] == ["media.uploaded", "media.deleted"]
    assert records[-1].actor == dep.ids["admin1"]
