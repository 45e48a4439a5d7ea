"""HTTP endpoints for signing in and for kiosk devices: /login, /logout, /me, /devices/*."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cloudbank.platform.errors import Conflict, Forbidden, Unauthorized
from cloudbank.platform.identity import Directory, LoginGuard
from cloudbank.platform.routing import ROUTER
from cloudbank.platform.service import AUDIT, CONFIG, ENGINE, KEYS, REDIS, authenticate, revoke, revoke_holder
from cloudbank.platform.validation import limit, read_json

routes = web.RouteTableDef()


@dataclass(frozen=True)
class LoginBody:
    username: str = field(metadata=limit(64))
    password: str = field(metadata=limit(256))


@dataclass(frozen=True)
class EnrolBody:
    code: str = field(metadata=limit(32))
    name: str = field(metadata=limit(200))


@dataclass(frozen=True)
class HeartbeatBody:
    online: bool
    camera_ok: bool
    microphone_ok: bool
    peripherals_ok: bool
    app_version: str = field(metadata=limit(64))
    details: dict[str, str] = field(default_factory=dict)


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Sign in a teller, supervisor or admin; returns a bearer token for the API."""
    body = await read_json(request, LoginBody)
    app = request.app
    config = app[CONFIG]
    guard = _guard(app)
    username = body.username.strip().lower()
    await guard.check(username, _client_ip(request))
    user = await Directory(app[ENGINE]).check_password(username, body.password)
    if user is None:
        await guard.failed(username, _client_ip(request))
        await app[AUDIT].append(username, "login.failed", f"user:{username}", {"ip": _client_ip(request)})
        raise Unauthorized("wrong username or password")
    await guard.succeeded(username, _client_ip(request))
    token = app[KEYS].issue(user.id, user.role, "api", config.user_token_ttl_s, name=user.username)
    await app[AUDIT].append(user.id, "login", f"user:{user.id}", {"ip": _client_ip(request)})
    return web.json_response({"token": token, "user": user.public(), "expires_in": config.user_token_ttl_s})


def _guard(app: web.Application) -> LoginGuard:
    config = app[CONFIG]
    return LoginGuard(app[REDIS], config.login_max_failures, config.login_lockout_s, config.login_ip_per_minute)


@routes.post("/users/{user_id}/unlock")
async def unlock_user(request: web.Request) -> web.Response:
    """An admin lifts every sign-in lock and failure count of a person (audited)."""
    claims = await authenticate(request)
    user = await Directory(request.app[ENGINE]).get_user(request.match_info["user_id"][:64])
    cleared = await _guard(request.app).unlock(user.username)
    await request.app[AUDIT].append(claims.sub, "user.unlocked", f"user:{user.id}",
                                    {"username": user.username, "cleared": cleared})
    return web.json_response({"ok": True, "user": user.public(), "cleared": cleared})


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    if claims.role == "teller":
        # Signed out means no more offers: one request does both, so a console closed right after its
        # Sign out (the request sent with keepalive) still leaves no ready teller behind.
        with contextlib.suppress(Conflict):  # in a call or ringing: that ends on its own terms
            await request.app[ROUTER].set_state(claims.sub, "offline", "signed out")
    await revoke(request.app[REDIS], claims)
    return web.json_response({"ok": True})


@routes.get("/me")
async def me(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    body: dict[str, Any] = {"id": claims.sub, "role": claims.role, "expires_at": claims.exp}
    if claims.role in ("teller", "supervisor", "admin"):
        body["user"] = (await Directory(request.app[ENGINE]).get_user(claims.sub)).public()
    return web.json_response(body)


@routes.post("/devices/enrol")
async def enrol(request: web.Request) -> web.Response:
    """A kiosk spends its one-time code and receives its long-lived device credential."""
    body = await read_json(request, EnrolBody)
    app = request.app
    device = await Directory(app[ENGINE]).enrol_device(body.code, body.name.strip() or "kiosk")
    token = app[KEYS].issue(device.id, "device", "api", app[CONFIG].device_token_ttl_s, branch=device.branch_id)
    await app[AUDIT].append(device.id, "device.enrolled", f"device:{device.id}", {"branch": device.branch_id})
    return web.json_response({"device_id": device.id, "branch_id": device.branch_id, "token": token}, status=201)


async def current_device(request: web.Request) -> str:
    """The calling kiosk's id, refusing revoked devices."""
    claims = await authenticate(request, roles=("device",))
    device = await Directory(request.app[ENGINE]).get_device(claims.sub)
    if device.revoked:
        raise Forbidden("this device was revoked; enrol it again with a new code")
    return device.id


@routes.post("/devices/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    device_id = await current_device(request)
    body = await read_json(request, HeartbeatBody)
    await Directory(request.app[ENGINE]).record_heartbeat(device_id, {
        "online": body.online, "camera_ok": body.camera_ok, "microphone_ok": body.microphone_ok,
        "peripherals_ok": body.peripherals_ok, "app_version": body.app_version, "details": body.details})
    return web.json_response({"ok": True})


@routes.get("/devices")
async def list_devices(request: web.Request) -> web.Response:
    await authenticate(request)
    return web.json_response({"devices": await Directory(request.app[ENGINE]).list_devices()})


@routes.post("/devices/{device_id}/revoke")
async def revoke_device(request: web.Request) -> web.Response:
    claims = await authenticate(request)
    device_id = request.match_info["device_id"][:64]
    await Directory(request.app[ENGINE]).revoke_device(device_id)
    # Its credential is refused everywhere, not only where the device record is read.
    await revoke_holder(request.app[REDIS], "device", device_id, request.app[CONFIG].device_token_ttl_s)
    await request.app[AUDIT].append(claims.sub, "device.revoked", f"device:{device_id}")
    return web.json_response({"ok": True})
