"""The Services screen of the admin console in headless Chromium: admin1 drafts a change to the
wealth service's definition (a refused draft first: a disclosure with a word the speech engine does
not know, named by the field), submits it; their own approval is refused on screen; admin2 sees
what changed against the version in force and approves it; a second change is rejected with a
reason. Run inside `unshare -n` so nothing leaves loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from cloudbank.platform.audit import AuditChain
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.seed import seed_definitions, seed_services
from cloudbank.platform.server import build_root
from cloudbank.platform.service_definitions import ServiceDefinitions

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"
SHOTS = os.environ.get("SHOTS_DIR")  # set: also save the screen's screenshots there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def deployment(config: Config) -> AsyncIterator[str]:
    """platform + media with the demo catalogue, admin1 and admin2, and the wealth definition v1 approved."""
    config = config.with_(port=free_port())
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    ids = []
    for username in ("admin1", "admin2", "admin3"):
        user, _ = await directory.add_user(username, "admin", display_name=username.title(), password=PASSWORD)
        ids.append(user.id)
    await seed_services(Catalogue(engine))
    await seed_definitions(ServiceDefinitions(engine), AuditChain(engine), ids[2], ids[1])
    await engine.dispose()
    runner = web.AppRunner(build_root(config, ["platform", "media"]), access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.port).start()
    try:
        yield config.base_url
    finally:
        await runner.cleanup()


async def signed_in(browser: Browser, url: str, username: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    await page.goto(f"{url}/media/")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text(username.title())
    await page.get_by_test_id("tab-services").click()
    return page


async def shoot(page: Page, name: str, testid: str) -> None:
    if not SHOTS:
        return
    for w, h in ((1366, 768), (390, 844)):
        await page.set_viewport_size({"width": w, "height": h})
        await page.get_by_test_id(testid).scroll_into_view_if_needed()
        await page.screenshot(path=str(Path(SHOTS) / f"services-{name}-after-{w}.png"))
    await page.set_viewport_size({"width": 1366, "height": 768})


@pytest.mark.slow
async def test_a_definition_drafted_by_one_admin_is_approved_by_another(deployment: str) -> None:
    url = deployment
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            maker = await signed_in(browser, url, "admin1", errors)
            wealth = maker.get_by_test_id("service-wealth")
            await expect(wealth.get_by_test_id("service-status")).to_have_text("Calls use version 1.")
            await expect(maker.get_by_test_id("service-general")).to_have_attribute("data-state", "none")

            # A draft: a new name, a new disclosure with a word the engine lacks -> refused by the field.
            await wealth.get_by_test_id("service-edit").click()
            editor = maker.get_by_test_id("service-editor")
            await editor.get_by_test_id("draft-title").fill("Fund sale (2026)")
            await editor.get_by_test_id("draft-add-item").click()
            await editor.get_by_test_id("draft-item-id-5").fill("prospectus")
            await editor.get_by_test_id("draft-item-phrase-5").fill("read the prospectuss")
            await editor.get_by_test_id("draft-item-label-5").fill("Read the prospectus")
            await editor.get_by_test_id("draft-submit").click()
            refusal = editor.get_by_test_id("error-definition.script.prospectus")
            await expect(refusal).to_contain_text("'prospectuss'")
            await expect(refusal).to_contain_text("does not know")
            await expect(editor.get_by_test_id("draft-item-5").get_by_test_id(
                "error-definition.script.prospectus")).to_be_visible()
            await shoot(maker, "refused", "error-definition.script.prospectus")

            # Reworded, a required field added: submitted, waiting for another admin.
            await editor.get_by_test_id("draft-item-phrase-5").fill("read the prospectus")
            await editor.get_by_test_id("draft-add-field").click()
            await editor.get_by_test_id("draft-field-name-6").fill("income")
            await editor.get_by_test_id("draft-field-label-6").fill("Yearly income")
            await editor.get_by_test_id("draft-field-kind-6").select_option("number")
            await editor.get_by_test_id("draft-field-required-6").check()
            await editor.get_by_test_id("draft-submit").click()
            await expect(wealth).to_have_attribute("data-state", "pending")
            await expect(maker.get_by_test_id("service-editor")).to_have_count(0)

            # The maker's own approval is refused on screen, and nothing changes.
            await expect(wealth.get_by_test_id("own-change")).to_be_visible()
            await wealth.get_by_test_id("service-approve").click()
            await expect(wealth.get_by_test_id("service-decision-error")).to_contain_text(
                "another admin must approve it")
            await expect(wealth).to_have_attribute("data-approved", "1")

            # admin2 sees what changed against version 1, and approves.
            checker = await signed_in(browser, url, "admin2", errors)
            wealth2 = checker.get_by_test_id("service-wealth")
            diff = wealth2.get_by_test_id("service-diff")
            await expect(diff.locator("[data-kind=title]")).to_have_text("Name: Fund sale → Fund sale (2026)")
            await expect(diff.locator("[data-kind=field-added]")).to_have_text("Field added: income (Yearly income)")
            await expect(diff.locator("[data-kind=item-added]")).to_have_text(
                "Checklist item added: prospectus (Read the prospectus)")
            await expect(diff.locator("li")).to_have_count(3)
            await expect(wealth2.get_by_test_id("own-change")).to_have_count(0)
            await shoot(checker, "review", "service-approve")
            await wealth2.get_by_test_id("service-approve").click()
            await expect(wealth2).to_have_attribute("data-approved", "2")
            await expect(wealth2.get_by_test_id("service-status")).to_have_text("Calls use version 2.")

            # A second change, rejected by admin2 with a reason the maker then sees.
            await maker.reload()
            await maker.get_by_test_id("tab-services").click()
            await maker.get_by_test_id("service-wealth").get_by_test_id("service-edit").click()
            await maker.get_by_test_id("draft-keywords").fill("fund\nwealth")
            await maker.get_by_test_id("draft-submit").click()
            await expect(wealth).to_have_attribute("data-state", "pending")
            await checker.reload()
            await checker.get_by_test_id("tab-services").click()
            await expect(wealth2.get_by_test_id("service-diff")).to_have_text(
                "Keywords added: —; removed: investment")
            await wealth2.get_by_test_id("service-reject-reason").fill("keep investment as a keyword")
            await wealth2.get_by_test_id("service-reject").click()
            await expect(wealth2).to_have_attribute("data-state", "rejected")
            await expect(wealth2.get_by_test_id("service-reason")).to_have_text(
                "Reason: keep investment as a keyword")
            await expect(wealth2).to_have_attribute("data-approved", "2")

            # The screen in Chinese.
            await checker.get_by_test_id("language").select_option("zh")
            await expect(checker.get_by_test_id("tab-services")).to_have_text("业务")
            await expect(checker.get_by_test_id("service-wealth").get_by_test_id("service-status")).to_contain_text(
                "通话使用第 2 版。")
            assert errors == [], errors
        finally:
            await browser.close()
