"""What every service shares, checked where a person would notice it: the Redis client."""

from __future__ import annotations

from cloudbank.platform import events
from cloudbank.platform.events_api import BLOCK_MS
from cloudbank.platform.service import redis_client


async def test_a_blocking_read_longer_than_redis_py_default_timeout_returns_empty(redis_url: str) -> None:
    # The events pump blocks BLOCK_MS on XREAD. redis-py 8's default read timeout (5 s) equals it, so a
    # reply a little late raised TimeoutError and dropped every event socket; this read blocks longer.
    redis = redis_client(redis_url)
    try:
        assert await events.read(redis, "user:nobody", "0-0", block_ms=BLOCK_MS + 700) == []
    finally:
        await redis.aclose()
