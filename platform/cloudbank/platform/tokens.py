"""Signed, expiring tokens with a role and a scope (JWT, HS256) and the key ring that signs them.

Keys live in the records database so every node shares them. New tokens are signed with the
newest key; any key younger than `retire_after_s` still verifies, so `rotate()` logs nobody out.
Tokens name their key in the `kid` header.

Roles: teller, supervisor, admin (people), device (kiosk), phone (verified phone customer),
and `join` tokens scoped to one call session with a `party` (customer, teller, supervisor).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform.errors import Forbidden, Unauthorized
from cloudbank.platform.records import signing_keys

PEOPLE = ("teller", "supervisor", "admin")
ROLES = (*PEOPLE, "device", "phone", "join")
ISSUER = "cloudbank"


@dataclass(frozen=True)
class Claims:
    sub: str
    role: str
    scope: str
    exp: float
    jti: str
    extra: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.extra.get(key, default)


class KeyRing:
    """Shared HMAC keys; refreshes from the database when it meets a kid it does not know."""

    def __init__(self, engine: AsyncEngine, retire_after_s: float = 30 * 24 * 3600) -> None:
        self.engine = engine
        self.retire_after_s = retire_after_s
        self._keys: dict[str, tuple[bytes, float]] = {}
        self._last_refresh = 0.0

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(signing_keys))).all()
        self._keys = {r.kid: (base64.b64decode(r.secret), r.created_at) for r in rows}
        self._last_refresh = time.monotonic()
        if not self._keys:
            await self.rotate()

    async def rotate(self) -> str:
        """Add a new signing key; older keys keep verifying until they retire."""
        kid = secrets.token_hex(8)
        secret = secrets.token_bytes(32)
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(signing_keys.insert().values(
                kid=kid, secret=base64.b64encode(secret).decode(), created_at=now))
            await conn.execute(signing_keys.delete().where(signing_keys.c.created_at < now - self.retire_after_s))
        self._keys[kid] = (secret, now)
        return kid

    def _current(self) -> tuple[str, bytes]:
        kid, (secret, _) = max(self._keys.items(), key=lambda kv: kv[1][1])
        return kid, secret

    async def secret_for(self, kid: str) -> bytes | None:
        if kid not in self._keys and time.monotonic() - self._last_refresh > 1.0:
            await self.load()
        entry = self._keys.get(kid)
        if entry is None or entry[1] < time.time() - self.retire_after_s:
            return None
        return entry[0]

    def issue(self, sub: str, role: str, scope: str, ttl_s: float, **extra: Any) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role}")
        kid, secret = self._current()
        now = time.time()
        payload = {"iss": ISSUER, "sub": sub, "role": role, "scope": scope, "iat": int(now),
                   "exp": int(now + ttl_s), "jti": uuid.uuid4().hex, **extra}
        return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})

    async def verify(self, token: str, roles: Iterable[str] | None = None, scope: str | None = None) -> Claims:
        """Check signature, expiry, role and scope. 401 when the token is bad, 403 when misused."""
        if not token or len(token) > 4096:
            raise Unauthorized("a valid token is required")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("the token is malformed") from None
        secret = await self.secret_for(str(kid)) if kid else None
        if secret is None:
            raise Unauthorized("the token was not signed by a key of this system")
        try:
            data = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                              options={"require": ["exp", "sub", "role", "scope", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; sign in again") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token's signature or claims are invalid") from None
        allowed = tuple(roles) if roles is not None else None
        if allowed is not None and data["role"] not in allowed:
            raise Forbidden(f"a {data['role']} token cannot do this (needs {' or '.join(allowed)})")
        if scope is not None and data["scope"] != scope:
            raise Forbidden("the token is for another scope")
        extra = {k: v for k, v in data.items()
                 if k not in ("sub", "role", "scope", "exp", "jti", "iat", "iss")}
        return Claims(str(data["sub"]), str(data["role"]), str(data["scope"]), float(data["exp"]),
                      str(data["jti"]), extra)


def turn_credentials(secret: str, user: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """coturn's time-limited credentials (`use-auth-secret`): `<expiry>:<user>` and its HMAC-SHA1."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
