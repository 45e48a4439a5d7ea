"""Which asyncio event loop a process runs on.

uvloop (libuv) costs less CPU per socket operation than asyncio's default loop; measured with
`cloudbank bench acd`, where a platform node is CPU-bound on asyncio and redis-py per Redis call,
it lowers the client CPU per routing decision (see the bench's `default_loop_*` figures). It is
used for the platform service process only: processes that host aiortc peer connections (the video
node, `cloudbank up`, the kiosk) keep asyncio's default loop, on which aiortc is tested.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run(coro: Coroutine[Any, Any, T], *, fast: bool = False) -> T:
    """`asyncio.run(coro)`, on uvloop when `fast` and uvloop is installed."""
    if fast and uvloop_available():
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
