"""A whole cloudbank on loopback for the customer-side tests: the platform, video node and phone
page apps from this repo on one real port, a seeded catalogue, a branch, and a teller driven
through the SDK's platform client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from cloudbank.kiosk_client.client import PlatformClient, VideoGrant
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root

MakeServer = Callable[..., Awaitable[TestServer]]
TELLER_PASSWORD = "teller password 123"

# Reads the synthetic stamp (media_sources.stamped_luma) off a page's remote <video>, in the page;
# [source, counter, width, height] or null.
READ_STAMP = """() => {
  const v = document.querySelector('[data-testid="remote-video"]');
  if (!v || !v.videoWidth) return null;
  const w = v.videoWidth, h = v.videoHeight;
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const ctx = c.getContext('2d'); ctx.drawImage(v, 0, 0, w, h);
  const cellW = w / 16, cellH = Math.max(8, Math.floor(h / 8));
  const rows = [0, 1].map((r) => {
    let n = 0;
    for (let i = 0; i < 16; i++) {
      const d = ctx.getImageData(Math.floor((i + 0.5) * cellW), Math.floor((r + 0.5) * cellH), 1, 1).data;
      n = (n << 1) | ((d[0] + d[1] + d[2]) / 3 > 125 ? 1 : 0);
    }
    return n;
  });
  const counter = rows[0], source = rows[1] >> 8, check = rows[1] & 0xff;
  const expected = ((counter & 0xff) ^ (counter >> 8) ^ source ^ 0x5a) & 0xff;
  return check === expected ? [source, counter, w, h] : null;
}"""



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait for a condition the code under test makes true (bounded; fails with `what`)."""
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a test polls a plain predicate
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@dataclass
class Stack:
    url: str
    config: Config
    directory: Directory


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    """Config changes for one test: `@pytest.mark.parametrize("stack_overrides", [{...}])`."""
    return {}


@pytest.fixture
async def stack(aiohttp_server: MakeServer, config: Config, stack_overrides: dict[str, Any]) -> AsyncIterator[Stack]:
    port = free_port()
    # No drain on shutdown: the test has ended its calls; waiting for stragglers only slows teardown.
    cfg = config.with_(port=port, ice_addresses=("127.0.0.1",), video_drain_s=0.0, **stack_overrides)
    server = await aiohttp_server(build_root(cfg, ["platform", "video", "phone"]), port=port)
    engine = create_engine(cfg.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    await seed_services(Catalogue(engine))
    yield Stack(str(server.make_url("")).rstrip("/"), cfg, directory)
    await engine.dispose()


@dataclass
class Teller:
    """A teller at a seat, played by the SDK's platform client (the seat console's REST calls)."""

    client: PlatformClient
    events: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        stream = self.client.events()

        async def pump() -> None:
            async for event in stream:
                self.events.append(event)

        self.task = asyncio.create_task(pump())
        await stream.wait_connected()
        self._stream = stream
        await self.client.request("POST", "teller/state", {"state": "ready"})

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def accept_next(self, timeout: float = 20.0) -> tuple[str, VideoGrant]:
        await until(lambda: bool(self.of_type("offer")), timeout, "an offer to the teller")
        offer = self.of_type("offer")[-1]
        body = await self.client.request("POST", f"offers/{offer['offer_id']}/accept")
        return str(body["session"]["id"]), VideoGrant.from_json(body["video"])

    async def push(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.client.request("POST", f"sessions/{session_id}/push", body))["push"])

    async def close(self) -> None:
        if self.task is not None:
            await self._stream.close()
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.client.close()


@pytest.fixture
async def teller(stack: Stack) -> AsyncIterator[Teller]:
    await stack.directory.add_user("teller1", "teller", password=TELLER_PASSWORD,
                                   skills={"general": 1, "accounts": 1})
    client = PlatformClient(stack.url)
    body = await client.request("POST", "login", {"username": "teller1", "password": TELLER_PASSWORD})
    client.token = body["token"]
    seat = Teller(client)
    await seat.start()
    yield seat
    await seat.close()
