"""A supervisor's talk on the node's signalling (issue 14, point 7): refused for a teller, refused
for a supervisor the platform has not allowed (Redis `talk_key`), refused while another supervisor
speaks; allowed, it tells the supervisor and the teller. Run inside `unshare -n`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.config import Config
from cloudbank.platform.service import ENGINE, REDIS
from cloudbank.platform.talk import talk_key
from cloudbank.video.app import create_app
from cloudbank.video.testing_peers import Peer, ToneTrack, join_token

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
NODE = "node-a"
pytestmark = pytest.mark.slow


@pytest.fixture
async def node(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config.with_(video_node_id=NODE, video_drain_s=1.0), sinks=[]))


async def reply(peer: Peer, kind: str, count: int = 1) -> list[dict[str, Any]]:
    for _ in range(200):
        found = [m for m in peer.messages if m.get("type") == kind]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} message: {peer.messages}")


async def test_talk_is_refused_unless_the_platform_allowed_it(node: Client) -> None:
    url = str(node.make_url("/ws"))
    engine = node.app[ENGINE]
    teller = Peer("teller", source=2)
    sup1 = Peer("supervisor", microphone=ToneTrack())
    sup2 = Peer("supervisor", microphone=ToneTrack())
    try:
        await teller.join(url, await join_token(engine, "s1", "teller", NODE))
        await sup1.join(url, await join_token(engine, "s1", "supervisor", NODE, sub="user:sup-1"))
        await sup2.join(url, await join_token(engine, "s1", "supervisor", NODE, sub="user:sup-2"))
        assert teller.ws is not None and sup1.ws is not None and sup2.ws is not None
        await teller.ws.send_json({"type": "talk", "mode": "whisper"})
        assert (await reply(teller, "error"))[0]["code"] == "not_allowed"
        await sup1.ws.send_json({"type": "talk", "mode": "whisper"})
        error = (await reply(sup1, "error"))[0]
        assert error["code"] == "not_allowed" and "has not allowed" in error["message"]
        # Allowed a whisper, not a barge-in.
        await node.app[REDIS].set(talk_key("s1", "user:sup-1"), "whisper")
        await sup1.ws.send_json({"type": "talk", "mode": "barge"})
        assert len(await reply(sup1, "error", 2)) == 2
        await sup1.ws.send_json({"type": "talk", "mode": "whisper"})
        assert (await reply(sup1, "talk"))[0]["mode"] == "whisper"
        assert (await reply(teller, "talk"))[0]["mode"] == "whisper"
        # One supervisor speaks at a time.
        await node.app[REDIS].set(talk_key("s1", "user:sup-2"), "whisper")
        await sup2.ws.send_json({"type": "talk", "mode": "whisper"})
        assert "another supervisor" in (await reply(sup2, "error"))[0]["message"]
        # The whisperer leaves: the teller is told it stopped.
        await sup1.close()
        assert (await reply(teller, "talk", 2))[1]["mode"] == "off"
    finally:
        for peer in (teller, sup1, sup2):
            await peer.close()
