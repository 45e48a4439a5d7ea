"""The platform client against the real platform app on loopback: enrolment, heartbeat, phone
sign-in, refusals, and the events stream resuming after a drop without losing events."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from cloudbank.kiosk_client.client import DeviceStatus, PlatformClient
from cloudbank.kiosk_client.errors import PlatformError
from cloudbank.platform import events
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory
from cloudbank.platform.records import create_engine
from cloudbank.platform.seed import seed_services
from cloudbank.platform.server import build_root

MakeServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def server(aiohttp_server: MakeServer, config: Config) -> str:
    srv = await aiohttp_server(build_root(config, ["platform"]))
    return str(srv.make_url("")).rstrip("/")


@pytest.fixture
async def directory(server: str, config: Config) -> AsyncIterator[Directory]:
    engine = create_engine(config.effective_database_url)
    directory = Directory(engine)
    await directory.ensure_branch("demo", "Demo Branch")
    yield directory
    await engine.dispose()


async def _devices(directory: Directory) -> list[dict[str, Any]]:
    return await directory.list_devices()


async def test_enrol_then_heartbeat_is_recorded(server: str, directory: Directory) -> None:
    code = await directory.create_enrolment_code("demo")
    async with PlatformClient(server) as client:
        enrolment = await client.enrol(code, "kiosk-1")
        assert enrolment.branch_id == "demo" and client.token == enrolment.token
        assert (await client.me())["role"] == "device"
        await client.heartbeat(DeviceStatus(True, True, False, True, "0.1.0", {"printer": "paper low"}))
    (device,) = await _devices(directory)
    assert device["id"] == enrolment.device_id and device["name"] == "kiosk-1"
    assert device["status"]["microphone_ok"] is False and device["status"]["app_version"] == "0.1.0"
    assert device["status"]["details"] == {"printer": "paper low"}


async def test_wrong_and_reused_codes_are_refused_and_change_nothing(server: str, directory: Directory) -> None:
    code = await directory.create_enrolment_code("demo")
    async with PlatformClient(server) as client:
        with pytest.raises(PlatformError) as wrong:
            await client.enrol("AAAAAA-BBBBBB-CCCCCC", "kiosk-x")
        assert wrong.value.status == 401 and "enrolment code" in wrong.value.message
        assert client.token is None and await _devices(directory) == []
        await client.enrol(code, "kiosk-1")
    async with PlatformClient(server) as again:
        with pytest.raises(PlatformError) as reused:
            await again.enrol(code, "kiosk-2")
        assert reused.value.status == 401 and not reused.value.retryable
    assert [d["name"] for d in await _devices(directory)] == ["kiosk-1"]


async def test_a_revoked_device_is_refused(server: str, directory: Directory) -> None:
    async with PlatformClient(server) as client:
        enrolment = await client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
        await directory.revoke_device(enrolment.device_id)
        with pytest.raises(PlatformError) as refused:
            await client.heartbeat(DeviceStatus(True, True, True, True, "0.1.0"))
        assert refused.value.status == 403 and "revoked" in refused.value.message
    (device,) = await _devices(directory)
    assert device["last_seen"] is None and device["status"] == {}


async def test_bad_heartbeat_values_are_refused(server: str, directory: Directory) -> None:
    async with PlatformClient(server) as client:
        await client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
        with pytest.raises(PlatformError) as too_long:
            await client.heartbeat(DeviceStatus(True, True, True, True, "v" * (1024 * 1024)))
        assert too_long.value.status in (400, 413)
        with pytest.raises(PlatformError) as unknown:
            await client.request("POST", "devices/heartbeat", {**DeviceStatus(True, True, True, True, "1").to_json(),
                                                                "admin": True})
        assert unknown.value.status == 400 and "unknown field" in unknown.value.message
    (device,) = await _devices(directory)
    assert device["status"] == {}


async def test_unreachable_platform_is_a_retryable_error() -> None:
    async with PlatformClient("http://127.0.0.1:9", timeout_s=2) as client:
        with pytest.raises(PlatformError) as down:
            await client.services()
        assert down.value.status == 0 and down.value.retryable


async def test_phone_sign_in_with_the_one_time_code(server: str, config: Config) -> None:
    async with PlatformClient(server) as client:
        challenge = await client.phone_start("+82 10-1234-5678")
        line = (config.data / "otp.log").read_text().strip().splitlines()[-1]
        code = re.findall(r"(\d{6})$", line)[0]
        with pytest.raises(PlatformError) as wrong:
            await client.phone_verify(challenge, str((int(code) + 1) % 10**6).zfill(6))
        assert wrong.value.status in (400, 401) and client.token is None
        customer = await client.phone_verify(challenge, code)
        assert customer and (await client.me())["role"] == "phone"


async def _collect(stream: Any, into: list[dict[str, Any]]) -> None:
    async for event in stream:
        into.append(event)


async def test_events_resume_after_a_drop_without_loss(server: str, directory: Directory,
                                                       redis_client: Redis) -> None:
    async with PlatformClient(server) as client:
        enrolment = await client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
        cid = f"device:{enrolment.device_id}"
        stream = client.events()
        got: list[dict[str, Any]] = []
        task = asyncio.create_task(_collect(stream, got))
        await stream.wait_connected()
        await events.publish(redis_client, cid, {"type": "ticket.update", "n": 1})
        await _until(lambda: len(got) == 1)
        await stream.drop()
        # Published while the kiosk is disconnected: must arrive after the resume.
        await events.publish(redis_client, cid, {"type": "ticket.update", "n": 2})
        await events.publish(redis_client, cid, {"type": "push", "n": 3})
        await _until(lambda: len(got) == 3)
        assert [e["n"] for e in got] == [1, 2, 3] and stream.connects == 2
        assert len({e["stream_id"] for e in got}) == 3
        await stream.close()
        await asyncio.wait_for(task, 10)


async def test_events_with_a_revoked_device_token_end_the_stream(server: str, directory: Directory,
                                                                 redis_client: Redis) -> None:
    async with PlatformClient(server) as client:
        await client.enrol(await directory.create_enrolment_code("demo"), "kiosk-1")
        await client.request("POST", "logout")
        with pytest.raises(PlatformError) as refused:
            async for _event in client.events():
                pass
        assert refused.value.status == 401


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - a test polls a plain predicate
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_a_phone_customer_books_the_offered_call_back(aiohttp_server: MakeServer, config: Config) -> None:
    cfg = config.with_(callback_threshold_s=1.0)
    srv = await aiohttp_server(build_root(cfg, ["platform"]))
    engine = create_engine(cfg.effective_database_url)
    await seed_services(Catalogue(engine))
    await engine.dispose()
    async with PlatformClient(str(srv.make_url("")).rstrip("/")) as client:
        challenge = await client.phone_start("+821055554444")
        code = re.findall(r"(\d{6})$", (cfg.data / "otp.log").read_text().strip().splitlines()[-1])[0]
        await client.phone_verify(challenge, code)
        ticket = await client.create_ticket("general")
        assert ticket["channel"] == "phone" and ticket.get("callback_offer")
        with pytest.raises(PlatformError) as someone_else:
            await client.request_callback("000000000001-" + "0" * 24)
        assert someone_else.value.status == 404
        booked = await client.request_callback(ticket["id"])
        assert booked["ticket"]["state"] == "callback"
        assert (await client.ticket(ticket["id"]))["state"] == "callback"


def test_a_video_url_by_path_is_resolved_against_the_platform_address() -> None:
    from cloudbank.kiosk_client.client import absolute_video

    # `cloudbank up` names its node by path: the kiosk reaches it where it reached the platform
    assert absolute_video({"video": {"url": "/video/", "token": "t"}}, "http://192.0.2.1:8080")["video"]["url"] \
        == "http://192.0.2.1:8080/video/"
    # a node with its own address (a separate `cloudbank video` with a public URL) is left alone
    assert absolute_video({"video": {"url": "https://node-b.bank.example/video/"}}, "http://192.0.2.1:8080") \
        == {"video": {"url": "https://node-b.bank.example/video/"}}
    assert absolute_video({"type": "ticket.update"}, "http://x") == {"type": "ticket.update"}
