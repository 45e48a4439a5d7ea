"""Shared fixtures: one real embedded Redis per test session (flushed per test), a fresh SQLite
file per test, and a Config pointing at both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from cloudbank.platform.config import Config
from cloudbank.platform.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(redis_server: EmbeddedRedis) -> AsyncIterator[str]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Config:
    data = tmp_path / "data"
    data.mkdir()
    # video_transcribe off: a video node would otherwise load the ~530 MB vosk model at every start;
    # the ASR tests build their service from the shared model fixture instead.
    return Config(data=data, redis_url=redis_url, port=0,
                  database_url=f"sqlite+aiosqlite:///{data / 'cloudbank.sqlite3'}", video_transcribe=False)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()
