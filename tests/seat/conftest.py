"""Fixtures for the seat console's browser tests: the platform, video and seat services composed as
`cloudbank up` composes them (build_root) on a free loopback port, demo people in the directory,
and a headless Chromium page that saves a screenshot when its test fails."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.server import build_root
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--allow-loopback-in-peer-connection", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "correct-horse-battery"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class Seat:
    """A running deployment: its base URL, config and people (username -> user id)."""

    url: str
    config: Config
    people: dict[str, str]
    password: str = PASSWORD

    @property
    def seat_url(self) -> str:
        return f"{self.url}/seat/"

    async def enrolment_code(self) -> str:
        engine = create_engine(self.config.effective_database_url)
        try:
            return await Directory(engine).create_enrolment_code("demo")
        finally:
            await engine.dispose()

    async def login(self, page: Page, username: str, password: str | None = None) -> None:
        """Open the console and submit the login form."""
        await page.goto(self.seat_url)
        await page.get_by_test_id("login-username").fill(username)
        await page.get_by_test_id("login-password").fill(self.password if password is None else password)
        await page.get_by_test_id("login-submit").click()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def add_people(config: Config) -> dict[str, str]:
    engine = create_engine(config.effective_database_url)
    try:
        await migrate(engine)
        directory = Directory(engine)
        await directory.ensure_branch("demo", "Demo Branch")
        await Catalogue(engine).upsert(Service("deposit", "Deposits", "deposit", wrapup_s=2.0,
                                               keywords=("savings",)))
        people = {}
        for username, role in (("teller1", "teller"), ("teller2", "teller"), ("super1", "supervisor"),
                               ("admin1", "admin")):
            # super1 oversees the deposit queue; teller1 and teller2 have its skill.
            user, _ = await directory.add_user(username, role, display_name=username.title(),
                                               password=PASSWORD, skills={"deposit": 3}, queues=["deposit"])
            people[username] = user.id
        return people
    finally:
        await engine.dispose()


@pytest.fixture
async def seat(config: Config) -> AsyncIterator[Seat]:
    port = free_port()
    config = config.with_(port=port, login_max_failures=3, login_lockout_s=60)
    people = await add_people(config)
    runner = web.AppRunner(build_root(config, ["platform", "video", "seat"]), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Seat(config.base_url, config, people)
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        await b.close()


async def new_page(browser: Browser, errors: list[str]) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" else None)
    return context, page


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Page]:
    """A 1366x768 page; console errors land in `page_errors`; a screenshot is saved on failure."""
    errors: list[str] = []
    context, pg = await new_page(browser, errors)
    pg.set_default_timeout(10_000)
    request.node.page_errors = errors
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / f"{request.node.name}.png"
        await pg.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot: {shot}\nbrowser errors: {errors}")
    await context.close()


@pytest.fixture
def page_errors(request: pytest.FixtureRequest, page: Page) -> list[str]:
    return request.node.page_errors  # type: ignore[no-any-return]
