"""A video node with default settings transcribes a call in English and spots the catalogue's phrases:
two real aiortc peers play festival speech into a room; the node's own ASR (pocketsphinx, loaded from
the settings) sends transcript and keyword events, per speaker, for the session's service."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiortc.contrib.media import MediaPlayer

from cloudbank.platform.catalogue import Catalogue, Service
from cloudbank.platform.config import Config
from cloudbank.platform.events import add_to_audience, read
from cloudbank.platform.records import create_engine, migrate, sessions
from cloudbank.platform.service import ENGINE
from cloudbank.video.app import ASR, create_app
from cloudbank.video.testing_peers import Peer, StampedVideoTrack, join_token

pytestmark = pytest.mark.slow

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-speech"


def write_wav(path: Path, pcm: np.ndarray, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


async def test_a_call_on_a_default_node_is_transcribed_in_english_with_phrases_spotted(
        aiohttp_client: MakeClient, config: Config, redis_client: redis.asyncio.Redis, tmp_path: Path,
        english_speech: dict[str, np.ndarray]) -> None:
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    catalogue = Catalogue(engine)
    await catalogue.upsert(Service("open_account", "Open an account", "accounts", keywords=("savings account",)))
    await catalogue.upsert(Service("wealth", "Wealth product", "wealth", dual_recording=True,
                                   keywords=("investment",), required_phrases=("you may lose money",),
                                   forbidden_phrases=("guaranteed return",)))
    async with engine.begin() as conn:
        await conn.execute(sa.insert(sessions).values(id="s1", ticket_id="t1", service="wealth", customer="c1",
                                                      teller_id="teller-1", video_node=NODE, state="active",
                                                      created_at=time.time()))
    await engine.dispose()
    await add_to_audience(redis_client, "s1", "user:teller1")

    # Nothing about speech configured: the node loads pocketsphinx English with the catalogue's phrases.
    node = await aiohttp_client(create_app(config.with_(video_node_id=NODE, video_transcribe=True,
                                                        asr_pool_size=1, video_drain_s=1.0)))
    asr = node.app[ASR]
    assert asr.engine.name == "pocketsphinx" and asr.spot_pool is not None
    assert "fixed deposit" not in dict(asr.phrases)
    # A service edited after the node started: its phrase is searched for from the next call on.
    catalogue = Catalogue(node.app[ENGINE])
    await catalogue.upsert(Service("deposit", "Fixed deposit", "general", keywords=("fixed deposit",)))

    pause = np.zeros(48000, np.int16)
    customer_wav = write_wav(tmp_path / "customer.wav", np.concatenate(
        [pause, english_speech["savings"], pause, english_speech["rate"], pause, pause]))
    teller_wav = write_wav(tmp_path / "teller.wav", np.concatenate(
        [pause, english_speech["fund"], pause, pause]))
    players = [MediaPlayer(str(customer_wav)), MediaPlayer(str(teller_wav))]
    customer = Peer("customer", tracks=[players[0].audio, StampedVideoTrack(1)])
    teller = Peer("teller", tracks=[players[1].audio, StampedVideoTrack(2)])
    url = str(node.make_url("/ws"))
    events: list[dict[str, Any]] = []

    def keywords() -> list[tuple[str, str, str]]:
        return sorted((e["speaker"], e["kind"], e["phrase"]) for e in events if e["type"] == "keyword")

    try:
        await customer.join(url, await join_token(node.app[ENGINE], "s1", "customer", NODE))
        await teller.join(url, await join_token(node.app[ENGINE], "s1", "teller", NODE))
        deadline = time.monotonic() + 40
        while len(keywords()) < 3 and time.monotonic() < deadline:
            events = [e for _, e in await read(redis_client, "user:teller1", count=1000)]
            await asyncio.sleep(0.5)
    finally:
        await customer.close()
        await teller.close()
    assert keywords() == [("customer", "suggest", "fixed deposit"), ("customer", "suggest", "savings account"),
                          ("teller", "required", "you may lose money")]
    events = [e for _, e in await read(redis_client, "user:teller1", count=1000)]
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    heard: dict[str, set[str]] = {"customer": set(), "teller": set()}
    for e in finals:
        heard[e["speaker"]] |= {w["word"] for w in e["words"]}
    assert {"savings", "account", "interest", "deposit"} <= heard["customer"]
    assert {"fund", "guaranteed", "money"} <= heard["teller"]
    required = next(e for e in events if e["type"] == "keyword" and e["kind"] == "required")
    assert required["service"] == "wealth" and required["end"] > required["at"] > 0
