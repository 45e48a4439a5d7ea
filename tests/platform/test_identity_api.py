"""Sign-in, lockout, device enrolment and token checks through the platform app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from cloudbank.platform.app import create_app
from cloudbank.platform.catalogue import Catalogue
from cloudbank.platform.config import Config
from cloudbank.platform.identity import Directory, LoginGuard
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.seed import seed_services
from cloudbank.platform.service import AUDIT, ENGINE

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def api(aiohttp_client: MakeClient, config: Config) -> Client:
    return await aiohttp_client(create_app(config.with_(login_max_failures=3)))


async def _user(api: Client, role: str = "teller", name: str = "alice") -> str:
    directory = Directory(api.app[ENGINE])
    _, password = await directory.add_user(name, role, password="correct horse battery")
    return password


async def _login(api: Client, username: str, password: str) -> Any:
    return await api.post("/login", json={"username": username, "password": password})


async def test_healthz_reports_dependencies(api: Client) -> None:
    resp = await api.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["dependencies"] == {"redis": "ok", "database": "ok"}


async def test_healthz_names_the_dependency_that_is_down(aiohttp_client: MakeClient, config: Config,
                                                         tmp_path: Any) -> None:
    # A seeded catalogue makes start-up talk to Redis (queues are synced): it must still start.
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    await seed_services(Catalogue(engine))
    await engine.dispose()
    api = await aiohttp_client(create_app(config.with_(redis_url=f"unix://{tmp_path}/nothing.sock")))
    resp = await api.get("/healthz")
    body = await resp.json()
    assert resp.status == 503 and body["status"] == "degraded"
    assert body["down"] == ["redis"] and body["dependencies"]["database"] == "ok"


async def test_login_and_me(api: Client) -> None:
    password = await _user(api)
    resp = await _login(api, "alice", password)
    assert resp.status == 200
    token = (await resp.json())["token"]
    me = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert (await me.json())["user"]["username"] == "alice"
    assert (await api.post("/logout", headers={"Authorization": f"Bearer {token}"})).status == 200
    again = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert again.status == 401 and "revoked" in (await again.json())["message"]


async def test_wrong_password_then_lockout(api: Client) -> None:
    password = await _user(api)
    for _ in range(3):
        resp = await _login(api, "alice", "wrong password!")
        assert resp.status == 401
        assert (await resp.json())["message"] == "wrong username or password"
    locked = await _login(api, "alice", password)  # even the right password is refused while locked
    assert locked.status == 429 and (await locked.json())["locked"] is True
    assert int(locked.headers["Retry-After"]) > 0
    assert (await _login(api, "nobody", "whatever pw")).status == 401


@pytest.mark.parametrize(("body", "content_type", "status", "needle"), [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b'{"username": "a"}', "application/json", 400, "'password' is required"),
    (b'{"username": "a", "password": "b", "role": "admin"}', "application/json", 400, "unknown field 'role'"),
    (b'{"username": 5, "password": "b"}', "application/json", 400, "must be a string"),
    (b'[]', "application/json", 400, "JSON object"),
    (b'{"username": "' + b"a" * 1_000_000 + b'", "password": "b"}', "application/json", 400, "longer than 64"),
    (b'{"username": "' + b"a" * 2_000_000 + b'", "password": "b"}', "application/json", 413, "too large"),
    (b'{"username": "' + b"a" * 100 + b'", "password": "b"}', "application/json", 400, "longer than 64"),
    (b"username=a&password=b", "application/x-www-form-urlencoded", 415, "application/json"),
])
async def test_login_bad_input(api: Client, body: bytes, content_type: str, status: int, needle: str) -> None:
    resp = await api.post("/login", data=body, headers={"Content-Type": content_type})
    assert resp.status == status
    payload = await resp.json()
    assert needle in payload["message"]


async def test_device_enrolment_is_one_time(api: Client) -> None:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch One")
    code = await directory.create_enrolment_code("b1")
    resp = await api.post("/devices/enrol", json={"code": code, "name": "kiosk 1"})
    assert resp.status == 201
    body = await resp.json()
    assert body["branch_id"] == "b1"
    replay = await api.post("/devices/enrol", json={"code": code, "name": "kiosk 2"})
    assert replay.status == 401
    assert len(await directory.list_devices()) == 1
    wrong = await api.post("/devices/enrol", json={"code": "AAAAAA-BBBBBB-CCCCCC", "name": "x"})
    assert wrong.status == 401

    device_auth = {"Authorization": f"Bearer {body['token']}"}
    beat = {"online": True, "camera_ok": True, "microphone_ok": False, "peripherals_ok": True,
            "app_version": "1.0"}
    assert (await api.post("/devices/heartbeat", json=beat, headers=device_auth)).status == 200
    status = (await directory.list_devices())[0]["status"]
    assert status["microphone_ok"] is False
    # a kiosk token is not a teller or admin token
    assert (await api.get("/devices", headers=device_auth)).status == 403


async def test_revoked_device_is_refused(api: Client) -> None:
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch One")
    enrolled = await (await api.post("/devices/enrol", json={
        "code": await directory.create_enrolment_code("b1"), "name": "k"})).json()
    admin_pw = await _user(api, "admin", "root")
    admin = (await (await _login(api, "root", admin_pw)).json())["token"]
    teller_pw = await _user(api, "teller", "tina")
    teller = (await (await _login(api, "tina", teller_pw)).json())["token"]
    path = f"/devices/{enrolled['device_id']}/revoke"
    assert (await api.post(path, headers={"Authorization": f"Bearer {teller}"})).status == 403
    assert (await api.post(path, headers={"Authorization": f"Bearer {admin}"})).status == 200
    beat = {"online": True, "camera_ok": True, "microphone_ok": True, "peripherals_ok": True, "app_version": "1"}
    resp = await api.post("/devices/heartbeat", json=beat, headers={"Authorization": f"Bearer {enrolled['token']}"})
    assert resp.status == 403 and "revoked" in (await resp.json())["message"]
    assert (await api.post("/devices/unknown/revoke", headers={"Authorization": f"Bearer {admin}"})).status == 404


async def test_a_revoked_device_s_token_is_refused_everywhere(api: Client) -> None:
    """Not only where the device record is read: its event stream and sessions are closed to it too."""
    directory = Directory(api.app[ENGINE])
    await directory.ensure_branch("b1", "Branch One")
    enrolled = await (await api.post("/devices/enrol", json={
        "code": await directory.create_enrolment_code("b1"), "name": "k"})).json()
    other = await (await api.post("/devices/enrol", json={
        "code": await directory.create_enrolment_code("b1"), "name": "k2"})).json()
    admin = (await (await _login(api, "root", await _user(api, "admin", "root"))).json())["token"]
    kiosk = {"Authorization": f"Bearer {enrolled['token']}"}
    assert (await api.get("/sessions", headers=kiosk)).status == 200
    path = f"/devices/{enrolled['device_id']}/revoke"
    assert (await api.post(path, headers={"Authorization": f"Bearer {admin}"})).status == 200
    for resp in (await api.get("/sessions", headers=kiosk), await api.get("/me", headers=kiosk),
                 await api.get(f"/ws?token={enrolled['token']}")):
        assert resp.status == 403 and "revoked" in (await resp.json())["message"]
    assert (await api.get("/sessions", headers={"Authorization": f"Bearer {other['token']}"})).status == 200


async def test_missing_and_forged_tokens(api: Client) -> None:
    assert (await api.get("/me")).status == 401
    assert (await api.get("/me", headers={"Authorization": "Bearer abc.def.ghi"})).status == 401
    assert (await api.get("/me?token=" + "x" * 5000)).status == 401


def _from(address: str) -> aiohttp.ClientSession:
    """A client whose requests come from another loopback address (all of 127/8 is local)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def _login_from(session: aiohttp.ClientSession, api: Client, username: str, password: str) -> Any:
    async with session.post(api.make_url("/login"), json={"username": username, "password": password}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_a_stranger_s_failures_do_not_lock_the_teller_out_from_their_seat(api: Client) -> None:
    password = await _user(api)
    async with _from("127.0.0.2") as stranger, _from("127.0.0.3") as seat:
        for _ in range(3):
            assert (await _login_from(stranger, api, "alice", "wrong password!"))[0] == 401
        status, headers, body = await _login_from(stranger, api, "alice", password)
        assert status == 429 and body["locked"] is True and int(headers["Retry-After"]) > 0
        # The teller at their own seat signs in.
        status, _, body = await _login_from(seat, api, "alice", password)
        assert status == 200 and body["user"]["username"] == "alice"
        # ...and the stranger's address stays locked after that.
        assert (await _login_from(stranger, api, "alice", password))[0] == 429


async def test_guessing_spread_over_many_addresses_is_slowed_but_not_at_a_known_seat(api: Client) -> None:
    password = await _user(api)
    async with _from("127.0.0.9") as seat:
        assert (await _login_from(seat, api, "alice", password))[0] == 200  # a known address from now on
    cap = LoginGuard.USER_CAP_FACTOR * 3
    for n in range(cap):  # two failures per address: no pair locks, the username's count grows
        async with _from(f"127.0.1.{n // 2 + 1}") as guesser:
            assert (await _login_from(guesser, api, "alice", "wrong password!"))[0] == 401
    async with _from("127.0.2.1") as fresh:
        status, headers, body = await _login_from(fresh, api, "alice", password)
        assert status == 429 and body["locked"] is True and int(headers["Retry-After"]) >= 1
    async with _from("127.0.0.9") as seat:
        assert (await _login_from(seat, api, "alice", password))[0] == 200


async def test_an_admin_unlocks_a_locked_person_and_it_is_audited(api: Client) -> None:
    password = await _user(api)
    directory = Directory(api.app[ENGINE])
    alice = next(u for u in await directory.list_users() if u.username == "alice")
    for _ in range(3):
        assert (await _login(api, "alice", "wrong password!")).status == 401
    assert (await _login(api, "alice", password)).status == 429
    admin = (await (await _login(api, "root", await _user(api, "admin", "root"))).json())["token"]
    teller = (await (await _login(api, "tina", await _user(api, "teller", "tina"))).json())["token"]
    path = f"/users/{alice.id}/unlock"
    assert (await api.post(path)).status == 401
    assert (await api.post(path, headers={"Authorization": f"Bearer {teller}"})).status == 403
    assert (await _login(api, "alice", password)).status == 429  # the refusals changed nothing
    assert (await api.post("/users/nobody/unlock", headers={"Authorization": f"Bearer {admin}"})).status == 404
    resp = await api.post(path, headers={"Authorization": f"Bearer {admin}"})
    assert resp.status == 200 and (await resp.json())["cleared"] >= 1
    assert (await _login(api, "alice", password)).status == 200
    records = [r for r in await api.app[AUDIT].records() if r.action == "user.unlocked"]
    assert [(r.subject, r.details["username"]) for r in records] == [(f"user:{alice.id}", "alice")]
