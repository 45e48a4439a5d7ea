"""The platform process runs on uvloop; everything else on asyncio's default loop."""

from __future__ import annotations

import asyncio

from cloudbank.platform import event_loop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_fast_runs_on_uvloop_and_the_default_on_asyncio() -> None:
    assert event_loop.uvloop_available()
    assert event_loop.run(loop_module(), fast=True).startswith("uvloop")
    assert event_loop.run(loop_module()).startswith("asyncio")
