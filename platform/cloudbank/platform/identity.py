"""People, branches and kiosk devices: the directory, sign-in with throttling, and device enrolment."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from cloudbank.platform.passwords import MIN_LENGTH, generate_password, hash_password, verify_password
from cloudbank.platform.records import branches, devices, enrolment_codes, users
from cloudbank.platform.tokens import PEOPLE

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
ENROL_CODE_TTL_S = 7 * 24 * 3600
# Spent on a failed sign-in for an unknown user, so timing does not reveal which usernames exist.
_DUMMY_HASH = hash_password("not-a-real-password")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: str
    skills: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    disabled: bool = False

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "role": self.role, "skills": self.skills, "queues": self.queues}


@dataclass(frozen=True)
class Device:
    id: str
    branch_id: str
    name: str
    revoked: bool


def _user(row: Any) -> User:
    return User(row.id, row.username, row.display_name, row.role, json.loads(row.skills),
                json.loads(row.queues), bool(row.disabled))


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


class Directory:
    """Users, branches and devices in the records database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add_user(self, username: str, role: str, display_name: str = "", password: str | None = None,
                       skills: dict[str, int] | None = None, queues: list[str] | None = None,
                       ) -> tuple[User, str]:
        """Create a person; returns the user and the password (generated when not given)."""
        if not USERNAME_RE.match(username):
            raise BadRequest("username must be 2-64 characters of a-z, 0-9, '.', '_' or '-'")
        if role not in PEOPLE:
            raise BadRequest(f"role must be one of {', '.join(PEOPLE)}")
        password = password or generate_password()
        if len(password) < MIN_LENGTH:
            raise BadRequest(f"password must be at least {MIN_LENGTH} characters")
        user = User(str(uuid.uuid4()), username, display_name or username, role, skills or {}, queues or [])
        try:
            async with self.engine.begin() as conn:
                await conn.execute(users.insert().values(
                    id=user.id, username=username, display_name=user.display_name, role=role,
                    password_hash=hash_password(password), skills=json.dumps(user.skills),
                    queues=json.dumps(user.queues), created_at=time.time()))
        except IntegrityError:
            raise Conflict(f"a user named {username} already exists") from None
        return user, password

    async def list_users(self, role: str | None = None) -> list[User]:
        query = sa.select(users).order_by(users.c.username)
        if role:
            query = query.where(users.c.role == role)
        async with self.engine.connect() as conn:
            return [_user(r) for r in (await conn.execute(query)).all()]

    async def get_user(self, user_id: str) -> User:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound("no such user")
        return _user(row)

    async def set_skills(self, user_id: str, skills: dict[str, int]) -> None:
        async with self.engine.begin() as conn:
            res = await conn.execute(users.update().where(users.c.id == user_id).values(skills=json.dumps(skills)))
        if res.rowcount == 0:
            raise NotFound("no such user")

    async def check_password(self, username: str, password: str) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.username == username))).first()
        if row is None:
            verify_password(_DUMMY_HASH, password)
            return None
        if not verify_password(row.password_hash, password) or row.disabled:
            return None
        return _user(row)

    # -- branches and devices -------------------------------------------------------------------

    async def ensure_branch(self, branch_id: str, name: str) -> None:
        async with self.engine.begin() as conn:
            exists = (await conn.execute(sa.select(branches.c.id).where(branches.c.id == branch_id))).first()
            if exists is None:
                await conn.execute(branches.insert().values(id=branch_id, name=name, created_at=time.time()))

    async def branch_name(self, branch_id: str) -> str:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(branches.c.name).where(branches.c.id == branch_id))).first()
        return str(row[0]) if row else branch_id

    async def create_enrolment_code(self, branch_id: str, ttl_s: float = ENROL_CODE_TTL_S) -> str:
        """A one-time code a kiosk exchanges for its device credential. Only its hash is stored."""
        async with self.engine.connect() as conn:
            if (await conn.execute(sa.select(branches.c.id).where(branches.c.id == branch_id))).first() is None:
                raise NotFound(f"no branch {branch_id}")
        code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
        async with self.engine.begin() as conn:
            await conn.execute(enrolment_codes.insert().values(
                code_hash=_code_hash(code), branch_id=branch_id, expires_at=time.time() + ttl_s,
                created_at=time.time()))
        return code

    async def enrol_device(self, code: str, name: str) -> Device:
        """Spend a one-time code; a used, expired or unknown code is refused and changes nothing."""
        device = Device(str(uuid.uuid4()), "", name, False)
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(enrolment_codes).where(
                enrolment_codes.c.code_hash == _code_hash(code)))).first()
            if row is None or row.used_by is not None or row.expires_at < time.time():
                raise Unauthorized("the enrolment code is unknown, used or expired; ask an admin for a new one")
            spent = await conn.execute(enrolment_codes.update().where(
                enrolment_codes.c.code_hash == row.code_hash, enrolment_codes.c.used_by.is_(None),
            ).values(used_by=device.id))
            if spent.rowcount != 1:
                raise Unauthorized("the enrolment code was used already")
            await conn.execute(devices.insert().values(id=device.id, branch_id=row.branch_id, name=name,
                                                       created_at=time.time()))
        return Device(device.id, row.branch_id, name, False)

    async def get_device(self, device_id: str) -> Device:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(devices).where(devices.c.id == device_id))).first()
        if row is None:
            raise NotFound("no such device")
        return Device(row.id, row.branch_id, row.name, bool(row.revoked))

    async def list_devices(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(devices).order_by(devices.c.created_at))).all()
        return [{"id": r.id, "branch_id": r.branch_id, "name": r.name, "revoked": bool(r.revoked),
                 "status": json.loads(r.status), "last_seen": r.last_seen} for r in rows]

    async def revoke_device(self, device_id: str) -> None:
        async with self.engine.begin() as conn:
            res = await conn.execute(devices.update().where(devices.c.id == device_id).values(revoked=True))
        if res.rowcount == 0:
            raise NotFound("no such device")

    async def record_heartbeat(self, device_id: str, status: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(devices.update().where(devices.c.id == device_id).values(
                status=json.dumps(status), last_seen=time.time()))


class LoginGuard:
    """Throttles sign-in in Redis so that a stranger cannot lock a teller out of their shift.

    - per address: `ip_per_minute` attempts, whatever the username;
    - per (address, username): `max_failures` wrong passwords lock that pair for `lockout_s`; the
      same person signing in from their own seat (another address) is not affected;
    - per username, from every address together: past `USER_CAP_FACTOR * max_failures` failures each
      further attempt waits a delay that doubles (capped at `lockout_s`), which slows a guesser who
      spreads over many addresses. An address the person signed in from before (kept
      `KNOWN_S`) is spared that delay, so the teller at their own seat still gets in.
    A success clears the pair and the username's count; `unlock` (an admin) clears all of them.
    """

    USER_CAP_FACTOR = 4
    KNOWN_S = 30 * 24 * 3600

    def __init__(self, redis: Redis, max_failures: int, lockout_s: int, ip_per_minute: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.ip_per_minute = ip_per_minute

    @staticmethod
    def _pair(username: str, ip: str) -> str:
        return f"{username}|{ip}"

    async def check(self, username: str, ip: str) -> None:
        window = int(time.time() // 60)
        key = f"login:ip:{ip}:{window}"
        hits = await self.redis.incr(key)
        if hits == 1:
            await self.redis.expire(key, 120)
        if hits > self.ip_per_minute:
            raise TooManyRequests("too many sign-in attempts from this address; wait a minute", 60)
        ttl = await self.redis.ttl(f"login:lock:{self._pair(username, ip)}")
        if ttl and ttl > 0:
            raise TooManyRequests(f"this account is locked here after repeated failures; try again in "
                                  f"{ttl} s or ask an admin to unlock it", int(ttl), locked=True)
        count, last = await self.redis.hmget(f"login:user:{username}", ["n", "last"])
        excess = int(count or 0) - self.USER_CAP_FACTOR * self.max_failures
        if excess >= 0 and not await self.redis.sismember(f"login:known:{username}", ip):
            wait = min(self.lockout_s, 2 ** min(excess, 20))
            left = int(float(last or 0) + wait - time.time()) + 1
            if left > 0:
                raise TooManyRequests(f"too many failed sign-ins for this account; try again in {left} s "
                                      f"or ask an admin to unlock it", left, locked=True)

    async def failed(self, username: str, ip: str) -> None:
        pair = self._pair(username, ip)
        key = f"login:fail:{pair}"
        count = await self.redis.incr(key)
        await self.redis.expire(key, self.lockout_s)
        if count >= self.max_failures:
            await self.redis.set(f"login:lock:{pair}", "1", ex=self.lockout_s)
            await self.redis.delete(key)
        user_key = f"login:user:{username}"
        await self.redis.hincrby(user_key, "n", 1)
        await self.redis.hset(user_key, "last", repr(time.time()))
        await self.redis.expire(user_key, self.lockout_s)

    async def succeeded(self, username: str, ip: str) -> None:
        await self.redis.delete(f"login:fail:{self._pair(username, ip)}", f"login:user:{username}")
        await self.redis.sadd(f"login:known:{username}", ip)
        await self.redis.expire(f"login:known:{username}", self.KNOWN_S)

    async def unlock(self, username: str) -> int:
        """Clear every lock and failure count of `username`; returns how many keys went."""
        keys = [f"login:user:{username}"]
        for prefix in ("login:lock:", "login:fail:"):
            # USERNAME_RE keeps glob characters out of a stored username.
            keys += [k async for k in self.redis.scan_iter(match=f"{prefix}{username}|*", count=500)]
        return int(await self.redis.delete(*keys))
