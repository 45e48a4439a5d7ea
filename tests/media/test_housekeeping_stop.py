"""Media housekeeping at shutdown: the pass under way finishes (a purge deletes files, then writes
the catalogue and the audit chain), it is not cancelled half way."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from cloudbank.media import app as media_app
from cloudbank.platform.config import Config


async def test_a_housekeeping_pass_under_way_finishes_at_shutdown(config: Config,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    entered = asyncio.Event()
    finished: list[str] = []

    async def slow_pass(_app: web.Application) -> None:
        entered.set()
        await asyncio.sleep(0.5)  # the pass's own work, still going when the stop comes
        finished.append("pass")

    monkeypatch.setattr(media_app, "housekeeping_once", slow_pass)
    runner = web.AppRunner(media_app.create_app(config))
    await runner.setup()
    try:
        await asyncio.wait_for(entered.wait(), 10)
    finally:
        await runner.cleanup()
    assert finished == ["pass"]
