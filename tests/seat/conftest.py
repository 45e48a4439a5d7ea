"""Fixtures for the seat console's browser tests: the platform, video and seat services composed as
`cloudbank up` composes them (build_root) on a free loopback port, people and services in the
directory, a kiosk customer from the kiosk SDK, and a headless Chromium page (1366x768) that saves
a screenshot when its test fails. Run them inside `unshare -n` so nothing leaves loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from cloudbank.kiosk_client.call import Call
from cloudbank.kiosk_client.client import PlatformClient
from cloudbank.kiosk_client.media_sources import synthetic
from cloudbank.platform import app as platform_app
from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.server import build_root
from cloudbank.seat import app as seat_app
from cloudbank.video import app as video_app
from cloudbank.video.room import SinkFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--allow-loopback-in-peer-connection", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]
PASSWORD = "correct-horse-battery"
SERVICES = (
    Service("deposit", "Deposits", "deposit", wrapup_s=2.0, keywords=("savings",)),
    # Rings briefly, so a test can let an offer time out.
    Service("loans", "Loans", "loans", ring_timeout_s=2.0, wrapup_s=2.0),
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class Kiosk:
    """A kiosk customer driven from the test: platform client, its event stream, its call."""

    def __init__(self, client: PlatformClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.stream = client.events()
        self.reader = asyncio.create_task(self._read())
        self.call: Call | None = None

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    async def wait_event(self, kind: str, timeout: float = 15.0, after: int = 0) -> dict[str, Any]:
        """The first event of `kind` (at index `after` or later)."""
        async def find() -> dict[str, Any]:
            while True:
                for e in self.events[after:]:
                    if e.get("type") == kind:
                        return e
                await asyncio.sleep(0.1)

        return await asyncio.wait_for(find(), timeout)

    async def join(self, session_id: str) -> Call:
        self.call = await Call.for_session(self.client, session_id, synthetic(1), ice_addresses=["127.0.0.1"])
        await self.call.join()
        return self.call

    async def close(self) -> None:
        if self.call is not None:
            with contextlib.suppress(Exception):
                await self.call.leave()
        await self.stream.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        await self.client.close()


@dataclass
class Seat:
    """A running deployment (base URL, config, people: username -> user id) and the steps tests share."""

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

    async def token(self, page: Page) -> str:
        """The signed-in person's API token, as the console stored it."""
        return str(await page.evaluate("JSON.parse(sessionStorage.getItem('cloudbank.seat.auth')).token"))

    async def teller_ready(self, page: Page, username: str = "teller1") -> None:
        await self.login(page, username)
        await page.get_by_test_id("state-ready").click()
        await expect(page.get_by_test_id("state-now")).to_have_attribute("data-state", "ready")

    async def accept_offer(self, page: Page, kiosk: Kiosk, join: bool = True) -> tuple[str, Call | None]:
        """Accept the ringing offer; the kiosk joins the call when `join`."""
        await expect(page.get_by_test_id("offer")).to_be_visible()
        await expect(page.get_by_test_id("offer-service")).to_have_text("Deposits")
        await expect(page.get_by_test_id("offer-channel")).to_have_text("Kiosk at Demo Branch")
        await expect(page.get_by_test_id("offer-countdown")).to_contain_text("Answer within")
        await expect(page.get_by_test_id("offer-accept")).to_be_focused()
        await page.get_by_test_id("offer-accept").click()
        await expect(page.get_by_test_id("call")).to_be_visible()
        started = await kiosk.wait_event("session.started")
        session_id = str(started["session"]["id"])
        await expect(page.get_by_test_id("call")).to_have_attribute("data-session", session_id)
        return session_id, (await kiosk.join(session_id) if join else None)

    async def frames_decoded(self, page: Page, testid: str = "remote-video") -> int:
        value = await page.get_by_test_id(testid).get_attribute("data-frames-decoded")
        return int(value or 0)

    async def wait_frames_rising(self, page: Page, testid: str = "remote-video", timeout: float = 20.0) -> int:
        """framesDecoded (getStats, shown on the element) above zero, then higher a moment later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first = 0
        while loop.time() < deadline and first == 0:
            first = await self.frames_decoded(page, testid)
            await asyncio.sleep(0.3)
        assert first > 0, f"{testid} never decoded a frame"
        second = first
        while loop.time() < deadline and second <= first:
            await asyncio.sleep(0.5)
            second = await self.frames_decoded(page, testid)
        assert second > first, f"{testid}: framesDecoded stopped rising at {first}"
        return second


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
        for svc in SERVICES:
            await Catalogue(engine).upsert(svc)
        people = {}
        skills = {"deposit": 3, "loans": 3}
        for username, role, queues in (("teller1", "teller", []), ("teller2", "teller", []),
                                       ("super1", "supervisor", ["deposit", "loans"]),
                                       ("super2", "supervisor", ["other"]), ("admin1", "admin", [])):
            user, _ = await directory.add_user(username, role, display_name=username.title(),
                                               password=PASSWORD, skills=skills, queues=queues)
            people[username] = user.id
        return people
    finally:
        await engine.dispose()


def compose(config: Config, video_sinks: Sequence[SinkFactory] | None) -> web.Application:
    """`cloudbank up`'s composition (build_root); with `video_sinks`, the video node gets those stages."""
    if video_sinks is None:
        return build_root(config, ["platform", "video", "seat"])
    root = web.Application()
    root.add_subapp("/api/", platform_app.create_app(config))
    root.add_subapp("/video/", video_app.create_app(config, sinks=video_sinks))
    root.add_subapp("/seat/", seat_app.create_app(config))
    return root


@contextlib.asynccontextmanager
async def running_seat(config: Config, video_sinks: Sequence[SinkFactory] | None = None) -> AsyncIterator[Seat]:
    port = free_port()
    config = config.with_(port=port)
    people = await add_people(config)
    # A short shutdown: open WebSockets (events, signalling) must not hold the test's teardown.
    runner = web.AppRunner(compose(config, video_sinks), access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Seat(config.base_url, config, people)
    finally:
        await runner.cleanup()


@pytest.fixture
async def seat(config: Config) -> AsyncIterator[Seat]:
    # No live transcription here (the model costs ~530 MB and seconds per node): test_live_media has it.
    async with running_seat(config.with_(login_max_failures=3, login_lockout_s=60, video_transcribe=False)
                            ) as running:
        yield running


@pytest.fixture
def seat_with() -> Callable[..., contextlib.AbstractAsyncContextManager[Seat]]:
    """`seat_with(config, video_sinks)`: a deployment whose video node runs the given stages."""
    return running_seat


@pytest.fixture
async def short_token_seat(config: Config) -> AsyncIterator[Seat]:
    """A deployment whose sign-ins last 3 s (below what the settings parser allows, on purpose)."""
    async with running_seat(config.with_(user_token_ttl_s=3, video_transcribe=False)) as running:
        yield running


@pytest.fixture
async def kiosk(seat: Seat) -> AsyncIterator[Kiosk]:
    client = PlatformClient(seat.url)
    await client.enrol(await seat.enrolment_code(), "kiosk-1")
    k = Kiosk(client)
    await k.stream.wait_connected()
    yield k
    await asyncio.wait_for(k.close(), 15)


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
async def second_page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Page]:
    """Another person's browser (its own storage), with a screenshot on failure too."""
    errors: list[str] = []
    context, pg = await new_page(browser, errors)
    pg.set_default_timeout(10_000)
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / f"{request.node.name}-second.png"
        await pg.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot (second page): {shot}\nbrowser errors: {errors}")
    await context.close()


@pytest.fixture
def page_errors(request: pytest.FixtureRequest, page: Page) -> list[str]:
    return request.node.page_errors  # type: ignore[no-any-return]
