"""Phone sign-in: one-time codes that expire, are single-use, allow few attempts and are rate limited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.config import Config
from cloudbank.platform.phone_auth import (
    MAX_ATTEMPTS,
    OTP_SENDER,
    STARTS_PER_ADDRESS,
    STARTS_PER_NUMBER,
    FileOtpSender,
    normalise_phone,
)
from cloudbank.platform.service import KEYS, REDIS

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


class RecordingSender(FileOtpSender):
    """The real file sender that also remembers codes, so a test can read them without parsing the file."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[tuple[str, str]] = []

    async def send(self, phone: str, code: str) -> None:
        await super().send(phone, code)
        self.sent.append((phone, code))


class FailingSender(FileOtpSender):
    async def send(self, phone: str, code: str) -> None:
        raise OSError("SMS gateway down")


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    app = create_app(config)
    app[OTP_SENDER] = RecordingSender(config.data / "otp.log")
    return await aiohttp_client(app)


def _sender(api: Client) -> RecordingSender:
    sender = api.app[OTP_SENDER]
    assert isinstance(sender, RecordingSender)
    return sender


async def _start(api: Client, phone: str = "+82 10-1234-5678") -> tuple[str, str]:
    resp = await api.post("/phone/start", json={"phone": phone})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["challenge_id"], _sender(api).sent[-1][1]


async def _verify(api: Client, challenge_id: str, code: str) -> Any:
    return await api.post("/phone/verify", json={"challenge_id": challenge_id, "code": code})


async def test_code_goes_to_the_file_and_buys_a_phone_token(api: Client, config: Config) -> None:
    challenge, code = await _start(api)
    assert _sender(api).sent == [("+821012345678", code)] and len(code) == 6 and code.isdigit()
    assert "+821012345678 " + code in (config.data / "otp.log").read_text()
    resp = await _verify(api, challenge, code)
    assert resp.status == 200
    body = await resp.json()
    claims = await api.app[KEYS].verify(body["token"], roles=("phone",), scope="api")
    assert claims.sub == body["customer_id"] and claims.get("phone") == "+821012345678"
    me = await api.get("/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert (await me.json())["role"] == "phone"
    # The same number signs in again as the same customer.
    challenge, code = await _start(api, "+821012345678")
    assert (await (await _verify(api, challenge, code)).json())["customer_id"] == body["customer_id"]


async def test_a_code_is_single_use(api: Client) -> None:
    challenge, code = await _start(api)
    assert (await _verify(api, challenge, code)).status == 200
    replay = await _verify(api, challenge, code)
    assert replay.status == 401 and "expired or was used" in (await replay.json())["message"]


async def test_concurrent_verifies_of_one_code_let_only_one_through(api: Client) -> None:
    challenge, code = await _start(api)
    results = await asyncio.gather(*(_verify(api, challenge, code) for _ in range(5)))
    assert sorted(r.status for r in results) == [200, 401, 401, 401, 401]


async def test_an_expired_code_is_refused(api: Client) -> None:
    challenge, code = await _start(api)
    await api.app[REDIS].pexpire(f"otp:{challenge}", 1)  # what the TTL does after CODE_TTL_S
    await asyncio.sleep(0.05)
    resp = await _verify(api, challenge, code)
    assert resp.status == 401 and "expired" in (await resp.json())["message"]
    assert await api.app[REDIS].exists(f"otp:{challenge}") == 0


async def test_wrong_codes_are_limited(api: Client) -> None:
    challenge, code = await _start(api)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for n in range(MAX_ATTEMPTS - 1):
        resp = await _verify(api, challenge, wrong)
        assert resp.status == 401 and (await resp.json())["attempts_left"] == MAX_ATTEMPTS - 1 - n
    assert (await _verify(api, challenge, code)).status == 200  # the last attempt may still be right
    challenge, code = await _start(api, "+8210999")
    for _ in range(MAX_ATTEMPTS):
        await _verify(api, challenge, wrong)
    blocked = await _verify(api, challenge, code)  # the right code after too many wrong ones
    assert blocked.status == 429


async def test_starts_are_rate_limited_per_number(api: Client) -> None:
    for _ in range(STARTS_PER_NUMBER):
        await _start(api, "+821011112222")
    resp = await api.post("/phone/start", json={"phone": "+82 10 1111 2222"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert len(_sender(api).sent) == STARTS_PER_NUMBER
    await _start(api, "+821033334444")  # another number is unaffected


@pytest.mark.parametrize("written", ["821055556666", "00821055556666", "+82 (10) 5555-6666", "+82.10.5555.6666"])
def test_every_way_of_writing_a_number_is_one_number(written: str) -> None:
    assert normalise_phone(written) == "+821055556666"


async def test_one_handset_written_two_ways_shares_its_rate_limit_and_its_customer_id(api: Client) -> None:
    tokens = []
    for written in ("+15551234567", "15551234567"):
        challenge, code = await _start(api, written)
        tokens.append(await (await _verify(api, challenge, code)).json())
    assert tokens[0]["customer_id"] == tokens[1]["customer_id"] and tokens[1]["phone"] == "+15551234567"
    await _start(api, "0015551234567")  # the third start of this number, however written
    resp = await api.post("/phone/start", json={"phone": "1 555 123 4567"})
    assert resp.status == 429 and len(_sender(api).sent) == STARTS_PER_NUMBER
    assert await api.app[REDIS].keys("phone:customer:*") == ["phone:customer:+15551234567"]


async def test_starts_are_rate_limited_per_address(api: Client) -> None:
    for n in range(STARTS_PER_ADDRESS):
        await _start(api, f"+8210{n:08d}")
    resp = await api.post("/phone/start", json={"phone": "+821099990000"})
    assert resp.status == 429 and "this address" in (await resp.json())["message"]
    assert len(_sender(api).sent) == STARTS_PER_ADDRESS


async def test_the_demo_sender_says_so_at_start_and_keeps_codes_out_of_the_log(
        config: Config, caplog: pytest.LogCaptureFixture, api: Client) -> None:
    caplog.set_level(logging.DEBUG)
    sender = FileOtpSender(config.data / "outbox-test.log")
    assert any(r.levelno == logging.WARNING and "demo only" in r.getMessage() for r in caplog.records)
    await sender.send("+821012345678", "314159")
    await sender.send("+821012345678", "271828")
    text = (config.data / "outbox-test.log").read_text()
    assert text.startswith("# cloudbank DEMO one-time-code outbox") and text.count("DEMO") == 1
    assert text.splitlines()[-1].endswith("+821012345678 271828")
    assert (config.data / "outbox-test.log").stat().st_mode & 0o077 == 0  # only its owner reads it
    assert not [r for r in caplog.records if "314159" in r.getMessage() or "271828" in r.getMessage()]


async def test_a_failing_sender_is_a_server_error_not_a_token(aiohttp_client: MakeClient, config: Config) -> None:
    app = create_app(config)
    app[OTP_SENDER] = FailingSender(config.data / "otp.log")
    api = await aiohttp_client(app)
    resp = await api.post("/phone/start", json={"phone": "+821012345678"})
    assert resp.status == 500
    assert sorted(await api.app[REDIS].keys("otp:*")) == ["otp:rate:addr:127.0.0.1", "otp:rate:phone:+821012345678"]


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/phone/start", b"{nope", 400, "not valid JSON"),
    ("/phone/start", b"{}", 400, "'phone' is required"),
    ("/phone/start", b'{"phone": "+8210", "sms": true}', 400, "unknown field 'sms'"),
    ("/phone/start", b'{"phone": 821012345678}', 400, "must be a string"),
    ("/phone/start", b'{"phone": "call me maybe"}', 400, "6-15 digits"),
    ("/phone/start", b'{"phone": "12345"}', 400, "6-15 digits"),
    ("/phone/start", b'{"phone": "010-1234-5678"}', 400, "country code"),
    ("/phone/start", b'{"phone": "+0821012345678"}', 400, "6-15 digits"),
    ("/phone/start", b'{"phone": "+82 10 1234 5678 ext 9"}', 400, "6-15 digits"),
    ("/phone/start", b'{"phone": "+8210\\u0661\\u0662\\u0663\\u0664"}', 400, "6-15 digits"),
    ("/phone/start", b'{"phone": "' + b"1" * (1024 * 1024) + b'"}', 413, "too large"),
    ("/phone/verify", b'{"challenge_id": "x"}', 400, "'code' is required"),
    ("/phone/verify", b'{"challenge_id": "abcdefghijklmnopqrstuvwx", "code": 123456}', 400, "must be a string"),
    ("/phone/verify", b'{"challenge_id": "abcdefghijklmnopqrstuvwx", "code": "12a456"}', 400, "6 digits"),
    ("/phone/verify", b'{"challenge_id": "../../etc", "code": "123456"}', 400, "challenge_id"),
    ("/phone/verify", b'{"challenge_id": "abcdefghijklmnopqrstuvwx", "code": "123456"}', 401, "expired"),
])
async def test_bad_input_is_refused_and_changes_nothing(api: Client, path: str, body: bytes,
                                                       status: int, needle: str) -> None:
    resp = await api.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status, await resp.text()
    assert needle in (await resp.json())["message"]
    assert await api.app[REDIS].keys("otp:*") == [] and await api.app[REDIS].keys("phone:*") == []
    assert _sender(api).sent == []


async def test_a_phone_token_is_not_a_teller_token(api: Client) -> None:
    challenge, code = await _start(api)
    token = (await (await _verify(api, challenge, code)).json())["token"]
    resp = await api.put("/services/general", json={"name": "x", "skill": "general"},
                         headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403
