"""Phone customers: a one-time code sent to a phone number, exchanged for a token bound to it.

`POST phone/start {phone}` -> `{challenge_id, expires_in}`: a 6-digit code goes out through the
app's `OtpSender`. `POST phone/verify {challenge_id, code}` -> `{token, customer_id, phone}`. Codes
expire, are single-use, allow a few attempts; starts are rate limited per number and per client
address. Only a hash of each code is kept. Numbers are normalised once, first (`normalise_phone`), so
`+1 555…`, `001555…` and `1555…` are one number: one rate limit and one stable customer id.

The default sender (`FileOtpSender`) is for the demo only: it appends codes to `<data>/otp.log`, the
demo's outbox, and says so at start. A real deployment plugs in an SMS gateway: any object with
`async send(phone, code)` (the `OtpSender` protocol) put at `app[OTP_SENDER]` after `create_app`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from cloudbank.platform.errors import BadRequest, TooManyRequests, Unauthorized
from cloudbank.platform.service import AUDIT, CONFIG, KEYS, REDIS
from cloudbank.platform.validation import limit, read_json

log = logging.getLogger("cloudbank.otp")
routes = web.RouteTableDef()

CODE_TTL_S = 300
MAX_ATTEMPTS = 5
STARTS_PER_NUMBER = 3          # per STARTS_WINDOW_S
STARTS_PER_ADDRESS = 20
STARTS_WINDOW_S = 600
PHONE_TOKEN_TTL_S = 4 * 3600
PHONE_RE = re.compile(r"^\+[1-9][0-9]{5,14}$")
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class OtpSender(Protocol):
    """Delivers a one-time code to a phone (an SMS gateway in production)."""

    async def send(self, phone: str, code: str) -> None: ...


class FileOtpSender:
    """The demo's sender: each code is appended to a local outbox file the person trying the demo
    reads. It is not written to the log (logs are collected and kept; the outbox is the demo's SMS)."""

    HEADER = ("# cloudbank DEMO one-time-code outbox: no SMS sender is configured, so codes are written here.\n"
              "# Never use this in production: plug in a real OtpSender (see cloudbank.platform.phone_auth).\n")

    def __init__(self, path: Path) -> None:
        self.path = path
        log.warning("phone one-time codes go to the demo outbox %s, not to phones: this sender is for the "
                    "demo only; plug in a real OtpSender (an SMS gateway) for production", path)

    async def send(self, phone: str, code: str) -> None:
        log.info("one-time code for %s written to the demo outbox", phone)
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {phone} {code}\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            if f.tell() == 0:
                f.write(self.HEADER)
            f.write(line)


OTP_SENDER = web.AppKey("otp_sender", OtpSender)


def default_sender(data: Path) -> OtpSender:
    return FileOtpSender(data / "otp.log")


def normalise_phone(raw: str) -> str:
    """The number in E.164 form, `+` and 6-15 digits. Spaces, dashes, dots and brackets go; a leading
    `00` is the international prefix; digits without `+` are read as already starting with the country
    code; a national number (one leading 0) is refused, since which country it is in is unknown."""
    phone = re.sub(r"[\s\-().]", "", raw)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    elif phone.startswith("0"):
        raise BadRequest("give the number with its country code, e.g. +82 10 1234 5678 (not 010...)",
                         field="phone")
    phone = phone if phone.startswith("+") else "+" + phone
    if not PHONE_RE.fullmatch(phone):
        raise BadRequest("phone must be a number of 6-15 digits with its country code, optionally starting "
                         "with + or 00", field="phone")
    return phone


def _code_hash(challenge_id: str, code: str) -> str:
    return hashlib.sha256(f"{challenge_id}:{code}".encode()).hexdigest()


async def _limit(redis: Redis, key: str, allowed: int, window_s: int, what: str) -> None:
    hits = int(await redis.incr(key))
    if hits == 1:
        await redis.expire(key, window_s)
    if hits > allowed:
        ttl = int(await redis.ttl(key))
        raise TooManyRequests(f"too many codes requested for {what}; try again later", max(1, ttl))


class PhoneAuth:
    """Challenges in Redis: `otp:<challenge id>` -> {phone, hash, attempts}, expiring."""

    def __init__(self, redis: Redis, sender: OtpSender, ttl_s: int = CODE_TTL_S) -> None:
        self.redis, self.sender, self.ttl_s = redis, sender, ttl_s

    async def start(self, raw_phone: str, address: str) -> tuple[str, str]:
        """Send a code; returns (challenge id, normalised phone)."""
        phone = normalise_phone(raw_phone)
        await _limit(self.redis, f"otp:rate:addr:{address}", STARTS_PER_ADDRESS, STARTS_WINDOW_S, "this address")
        await _limit(self.redis, f"otp:rate:phone:{phone}", STARTS_PER_NUMBER, STARTS_WINDOW_S, "this number")
        challenge_id = secrets.token_urlsafe(18)
        code = f"{secrets.randbelow(10**6):06d}"
        key = f"otp:{challenge_id}"
        await self.redis.hset(key, mapping={"phone": phone, "hash": _code_hash(challenge_id, code),
                                            "attempts": 0})
        await self.redis.expire(key, self.ttl_s)
        try:
            await self.sender.send(phone, code)
        except BaseException:
            await self.redis.delete(key)  # a code nobody received must not be verifiable
            raise
        return challenge_id, phone

    async def verify(self, challenge_id: str, code: str) -> str:
        """Spend a challenge; returns its phone number. Wrong, expired or used codes are refused."""
        if not CHALLENGE_RE.match(challenge_id) or not re.fullmatch(r"[0-9]{6}", code):
            raise BadRequest("challenge_id must be the id phone/start returned, code 6 digits")
        key = f"otp:{challenge_id}"
        attempts = await self.redis.hincrby(key, "attempts", 1)
        phone, digest = await self.redis.hmget(key, ["phone", "hash"])
        if phone is None or digest is None:
            # HINCRBY on a missing key created it: remove the stub so nothing is left behind.
            await self.redis.delete(key)
            raise Unauthorized("the code expired or was used; ask for a new one")
        if attempts > MAX_ATTEMPTS:
            await self.redis.delete(key)
            raise TooManyRequests("too many wrong codes; ask for a new one", 1)
        if not hmac.compare_digest(str(digest), _code_hash(challenge_id, code)):
            raise Unauthorized("the code is wrong", attempts_left=MAX_ATTEMPTS - int(attempts))
        # Single use, even when two nodes verify the same code at once: only one DEL wins.
        if await self.redis.delete(key) != 1:
            raise Unauthorized("the code expired or was used; ask for a new one")
        return str(phone)

    async def customer_id(self, phone: str) -> str:
        """The stable customer id of a number (created at its first verification)."""
        key = f"phone:customer:{phone}"
        await self.redis.set(key, str(uuid.uuid4()), nx=True)
        return str(await self.redis.get(key))


def _auth(request: web.Request) -> PhoneAuth:
    return PhoneAuth(request.app[REDIS], request.app[OTP_SENDER])


@dataclass(frozen=True)
class PhoneStartBody:
    phone: str = field(metadata=limit(32))


@dataclass(frozen=True)
class PhoneVerifyBody:
    challenge_id: str = field(metadata=limit(64))
    code: str = field(metadata=limit(16))


@routes.post("/phone/start")
async def phone_start(request: web.Request) -> web.Response:
    """Send a one-time code to a phone number."""
    body = await read_json(request, PhoneStartBody)
    challenge_id, phone = await _auth(request).start(body.phone, request.remote or "unknown")
    await request.app[AUDIT].append(f"phone:{phone}", "phone.code_sent", f"phone:{phone}")
    return web.json_response({"challenge_id": challenge_id, "expires_in": CODE_TTL_S})


@routes.post("/phone/verify")
async def phone_verify(request: web.Request) -> web.Response:
    """Exchange the code for a phone customer's token."""
    body = await read_json(request, PhoneVerifyBody)
    auth = _auth(request)
    phone = await auth.verify(body.challenge_id, body.code)
    customer_id = await auth.customer_id(phone)
    ttl = min(PHONE_TOKEN_TTL_S, request.app[CONFIG].user_token_ttl_s)
    token = request.app[KEYS].issue(customer_id, "phone", "api", ttl, phone=phone)
    await request.app[AUDIT].append(f"phone:{customer_id}", "phone.verified", f"phone:{phone}")
    return web.json_response({"token": token, "customer_id": customer_id, "phone": phone, "expires_in": ttl})
