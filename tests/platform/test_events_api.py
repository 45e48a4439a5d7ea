"""The events WebSocket: delivery, resume on another node, token checks, bad client messages, floods."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from cloudbank.platform import events
from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.events_api import BURST, MAX_SOCKETS_PER_CLIENT, MAX_STRIKES
from cloudbank.platform.service import KEYS, REDIS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
WS = Any


@pytest.fixture
async def node_a(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def node_b(aiohttp_client: MakeClient, config: Config, node_a: Client) -> Client:
    # A second platform node on the same Redis and database (node_a created the signing key first).
    return await aiohttp_client(create_app(config))


def _token(api: Client, role: str = "device", sub: str = "k1", ttl: float = 600, scope: str = "api") -> str:
    return str(api.app[KEYS].issue(sub, role, scope, ttl))


async def _recv(ws: WS, timeout: float = 10) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, msg
    return dict(json.loads(msg.data))


async def _connect(api: Client, token: str, last_id: str | None = None) -> tuple[WS, dict[str, Any]]:
    params = {"token": token} | ({"last_id": last_id} if last_id else {})
    ws = await api.ws_connect("/ws", params=params)
    hello = await _recv(ws)
    assert hello["type"] == "hello"
    return ws, hello


async def test_events_arrive_in_order_with_their_ids(node_a: Client) -> None:
    redis = node_a.app[REDIS]
    ws, hello = await _connect(node_a, _token(node_a))
    assert hello["client"] == "device:k1" and hello["stream_id"] == "0-0"
    ids = [await events.publish(redis, "device:k1", {"type": "ticket.update", "n": n}) for n in range(3)]
    await events.publish(redis, "device:other", {"type": "ticket.update", "n": 99})  # not ours
    got = [await _recv(ws) for _ in range(3)]
    assert [(g["type"], g["n"], g["stream_id"]) for g in got] == [("ticket.update", n, ids[n]) for n in range(3)]
    await ws.close()


async def test_an_event_keeps_its_own_id_beside_its_stream_position(node_a: Client) -> None:
    ws, _ = await _connect(node_a, _token(node_a))
    position = await events.publish(node_a.app[REDIS], "device:k1", {"type": "push", "id": "push-7"})
    got = await _recv(ws)
    assert (got["id"], got["stream_id"]) == ("push-7", position)
    await ws.close()


async def test_reconnecting_to_the_other_node_resumes_from_the_last_id(node_a: Client, node_b: Client) -> None:
    redis = node_a.app[REDIS]
    token = _token(node_a, "teller", "t1")
    ws, _ = await _connect(node_a, token)
    await events.publish(redis, "user:t1", {"type": "offer", "offer_id": "o1"})
    first = await _recv(ws)
    await ws.close()
    # While the client is away (its node died, say), two events happen.
    await events.publish(redis, "user:t1", {"type": "offer.expired", "offer_id": "o1"})
    await events.publish(redis, "user:t1", {"type": "offer", "offer_id": "o2"})
    ws_b, hello = await _connect(node_b, token, last_id=first["stream_id"])
    assert hello["stream_id"] == first["stream_id"]
    missed = [await _recv(ws_b), await _recv(ws_b)]
    assert [(m["type"], m["offer_id"]) for m in missed] == [("offer.expired", "o1"), ("offer", "o2")]
    # ... and it keeps receiving live events on the new node.
    await events.publish(redis, "user:t1", {"type": "teller.state", "state": "ready"})
    assert (await _recv(ws_b))["type"] == "teller.state"
    await ws_b.close()


async def test_without_last_id_a_connection_starts_at_the_end_and_zero_replays_all(node_a: Client) -> None:
    redis = node_a.app[REDIS]
    old = await events.publish(redis, "phone:c1", {"type": "ticket.update"})
    ws, hello = await _connect(node_a, _token(node_a, "phone", "c1"))
    assert hello["stream_id"] == old
    await ws.send_json({"type": "ping"})
    assert (await _recv(ws))["type"] == "pong"  # the old event was not replayed
    await ws.close()
    ws, _ = await _connect(node_a, _token(node_a, "phone", "c1"), last_id="0-0")
    assert (await _recv(ws))["stream_id"] == old
    await ws.close()


async def test_ping_answers_pong_with_nonce(node_a: Client) -> None:
    ws, _ = await _connect(node_a, _token(node_a))
    await ws.send_json({"type": "ping", "nonce": "abc"})
    pong = await _recv(ws)
    assert pong["type"] == "pong" and pong["nonce"] == "abc" and pong["stream_id"] == "0-0"
    await ws.close()


@pytest.mark.parametrize(("raw", "code", "needle"), [
    ("{not json", "bad_json", "not valid JSON"),
    ("[1, 2]", "unknown_type", "unknown message type"),
    ('{"no_type": 1}', "unknown_type", "unknown message type None"),
    ('{"type": "subscribe"}', "unknown_type", "'subscribe'"),
    ('{"type": 5}', "unknown_type", "int"),
    ('{"type": "ping", "extra": 1}', "bad_message", "unknown field 'extra'"),
    ('{"type": "ping", "nonce": 5}', "bad_message", "must be a string"),
    ('{"type": "ping", "nonce": "' + "x" * 100 + '"}', "bad_message", "longer than 64"),
    ('{"type": "ping", "nonce": "' + "x" * (1024 * 1024) + '"}', "too_large", "at most"),
])
async def test_bad_client_messages_get_an_error_and_the_socket_lives_on(
        node_a: Client, raw: str, code: str, needle: str) -> None:
    redis = node_a.app[REDIS]
    ws, _ = await _connect(node_a, _token(node_a))
    await ws.send_str(raw)
    err = await _recv(ws)
    assert err["type"] == "error" and err["code"] == code and needle in err["message"], err
    await ws.send_bytes(b"\x00\x01")
    assert (await _recv(ws))["code"] == "binary"
    await events.publish(redis, "device:k1", {"type": "ticket.update"})
    assert (await _recv(ws))["type"] == "ticket.update"
    # Nothing else changed: no stream was created or written by the bad messages.
    assert await redis.keys("events:*") == ["events:device:k1"] and await redis.xlen("events:device:k1") == 1
    await ws.close()


async def test_flooding_is_refused_then_disconnected(node_a: Client) -> None:
    ws, _ = await _connect(node_a, _token(node_a))
    for _ in range(BURST + MAX_STRIKES + 5):  # bounded: a few dozen frames
        if ws.closed:
            break
        await ws.send_json({"type": "ping"})
    replies: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type != WSMsgType.TEXT:
            break
        replies.append(json.loads(msg.data))
    codes = [r.get("code") for r in replies if r["type"] == "error"]
    assert sum(1 for r in replies if r["type"] == "pong") <= BURST + 1
    assert "rate_limited" in codes and codes[-1] == "flooding"
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING) and ws.close_code == 1008


@pytest.mark.parametrize(("params", "status"), [
    ({}, 401),
    ({"token": "forged"}, 401),
    ({"token": "a" * 5000}, 401),
])
async def test_connections_without_a_valid_token_are_refused(node_a: Client, params: dict[str, str],
                                                             status: int) -> None:
    with pytest.raises(WSServerHandshakeError) as exc:
        await node_a.ws_connect("/ws", params=params)
    assert exc.value.status == status


async def test_join_tokens_and_bad_last_ids_are_refused(node_a: Client) -> None:
    join = _token(node_a, "join", "device:k1", scope="session:s1")
    for params, status in (({"token": join}, 403),
                           ({"token": _token(node_a), "last_id": "$"}, 400),
                           ({"token": _token(node_a), "last_id": "1-2-3"}, 400),
                           ({"token": _token(node_a), "last_id": "9" * 50 + "-0"}, 400)):
        resp = await node_a.get("/ws", params=params)
        assert resp.status == status, params
        assert (await resp.json())["error"]


async def test_revoked_token_is_refused(node_a: Client) -> None:
    token = _token(node_a, "teller", "t1")
    assert (await node_a.post("/logout", headers={"Authorization": f"Bearer {token}"})).status == 200
    with pytest.raises(WSServerHandshakeError) as exc:
        await node_a.ws_connect("/ws", params={"token": token})
    assert exc.value.status == 401


async def test_the_socket_closes_when_the_token_expires(node_a: Client) -> None:
    ws, _ = await _connect(node_a, _token(node_a, ttl=2))
    err = await _recv(ws, timeout=15)
    assert err["type"] == "error" and err["code"] == "token_expired"
    msg = await ws.receive(timeout=10)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 4001


async def test_two_clients_on_two_nodes_each_get_only_their_own(node_a: Client, node_b: Client) -> None:
    redis = node_a.app[REDIS]
    ws1, _ = await _connect(node_a, _token(node_a, "device", "k1"))
    ws2, _ = await _connect(node_b, _token(node_b, "device", "k2"))
    await events.publish(redis, "device:k2", {"type": "x", "to": "k2"})
    await events.publish(redis, "device:k1", {"type": "x", "to": "k1"})
    got = await asyncio.gather(_recv(ws1), _recv(ws2))
    assert [g["to"] for g in got] == ["k1", "k2"]
    await ws1.close()
    await ws2.close()


async def test_one_client_may_hold_only_a_few_sockets_per_node(node_a: Client) -> None:
    token = _token(node_a)
    sockets = [(await _connect(node_a, token))[0] for _ in range(MAX_SOCKETS_PER_CLIENT)]
    with pytest.raises(WSServerHandshakeError) as exc:
        await node_a.ws_connect("/ws", params={"token": token})
    assert exc.value.status == 429
    other, _ = await _connect(node_a, _token(node_a, sub="k2"))  # other clients are not affected
    await sockets.pop().close()
    for _ in range(50):  # the server notices the close on its next read (bounded wait)
        try:
            again, _ = await _connect(node_a, token)
            break
        except WSServerHandshakeError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("a closed socket was never released")
    for ws in [*sockets, other, again]:
        await ws.close()
