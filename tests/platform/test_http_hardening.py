"""HTTP hardening, across the whole system as `cloudbank up` composes it (build_root): every route of
every mounted app is read from the routers, so a route added later is covered without editing this.

- every reply (success, JSON refusal, aiohttp's own 404 and 405, static files, the root page, an
  unexpected exception) carries the CSP, nosniff, Referrer-Policy, frame-ancestors, a `Server`
  without versions, `Cache-Control: no-store` on JSON, and HSTS exactly when served over https;
- WebSocket upgrades from a foreign Origin are refused before the upgrade (403) on every route;
- no CORS header is ever sent to a foreign origin, preflight included;
- a token in the URL is refused on REST routes, taken on sockets and media-element files;
- every app limits its bodies: over the limit is a 413 JSON refusal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from yarl import URL

from cloudbank.platform import access
from cloudbank.platform.config import Config
from cloudbank.platform.errors import ConfigError
from cloudbank.platform.identity import Directory
from cloudbank.platform.phone_auth import OTP_SENDER, FileOtpSender
from cloudbank.platform.seed import seed_demo
from cloudbank.platform.server import build_root
from cloudbank.platform.service import ENGINE, KEYS, service_app
from cloudbank.platform.tokens import KeyRing
from cloudbank.platform.web_security import API_CSP, STREAMS_BODY, origin_allowed, page_csp
from cloudbank.video.registry import NODE_ID

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

SERVICES = ["platform", "video", "media", "seat", "phone"]
FOREIGN = "https://evil.example"
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
# The routes a browser opens without headers (sockets, <img>/<video> sources): `?token=` is taken.
URL_TOKEN_ROUTES = {"/api/ws", "/api/wallboard/ws", "/video/ws", "/video/snapshots/{session}/{name}",
                    "/media/api/recordings/{session_id}/files/{name}"}


class RecordingSender(FileOtpSender):
    async def send(self, phone: str, code: str) -> None:
        await super().send(phone, code)
        self.last = code


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Any


@dataclass
class System:
    client: Client
    keys: KeyRing
    subjects: dict[str, tuple[str, dict[str, Any]]]
    accounts: dict[str, str]  # username -> password
    enrolment_code: str
    otp: RecordingSender

    def token(self, role: str) -> str:
        sub, extra = self.subjects[role]
        scope = str(extra.get("scope", "api"))
        return self.keys.issue(sub, role, scope, 600, **{k: v for k, v in extra.items() if k != "scope"})

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


def apps(app: web.Application) -> Iterator[web.Application]:
    yield app
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from apps(resource.get_info()["app"])


def every_route(root: web.Application) -> list[Route]:
    """Each route once (the root's router lists its sub-apps' routes too)."""
    out: dict[tuple[str, str], Route] = {}
    for route in root.router.routes():
        resource = route.resource
        if route.method in ("HEAD", "OPTIONS") or resource is None or isinstance(resource, web.StaticResource):
            continue
        out.setdefault((route.method, resource.canonical), Route(route.method, resource.canonical, route.handler))
    return list(out.values())


def static_files(root: web.Application) -> list[str]:
    """One real file under every static folder of every app."""
    out = []
    for app in apps(root):
        for resource in app.router.resources():
            if isinstance(resource, web.StaticResource):
                folder = resource.get_info()["directory"]
                first = min(p for p in folder.rglob("*") if p.is_file())
                out.append(f"{resource.canonical}/{first.relative_to(folder).as_posix()}")
    return out


def filled(path: str) -> URL:
    return URL(re.sub(r"{[^}]+}", "x1", path), encoded=True)


def check_headers(headers: CIMultiDictProxy[str], what: str, https: bool = False) -> None:
    csp = headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert "frame-ancestors 'none'" in directives.values(), (what, csp)
    script = directives.get("script-src", directives.get("default-src", ""))
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script and script, (what, csp)
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "no-referrer", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Server") == "cloudbank", (what, headers.get("Server"))
    assert headers.get("Permissions-Policy"), what
    assert ("Strict-Transport-Security" in headers) == https, what
    assert not any(h.lower().startswith("access-control-") for h in headers), (what, dict(headers))
    if headers.get("Content-Type", "").startswith("application/json"):
        # JSON carries tokens and personal data; only the apps' config.json (neither) may be revalidated.
        expected = "no-cache" if what.endswith("/config.json") else "no-store"
        assert headers.get("Cache-Control") == expected, (what, headers.get("Cache-Control"))


async def _system(aiohttp_client: MakeClient, config: Config) -> System:
    root = build_root(config, SERVICES)
    platform = next(a for a in apps(root) if "/api/login" in {r.canonical for r in a.router.resources()})
    otp = RecordingSender(config.data / "otp.log")
    platform[OTP_SENDER] = otp
    video = next(a for a in apps(root) if a.get(NODE_ID) is not None)
    client = await aiohttp_client(root)
    directory = Directory(platform[ENGINE])
    seeded = await seed_demo(directory)
    assert seeded.enrolment_code is not None
    subjects: dict[str, tuple[str, dict[str, Any]]] = {}
    for role in ("teller", "supervisor", "admin"):
        user = (await directory.list_users(role=role))[0]
        subjects[role] = (user.id, {"name": user.username})
    subjects["join"] = ("cust-1", {"scope": "session:s-1", "party": "teller", "node": video[NODE_ID]})
    return System(client, platform[KEYS], subjects, {u: p for _, u, p in seeded.accounts},
                  await directory.create_enrolment_code("demo"), otp)


@pytest.fixture
async def system(aiohttp_client: MakeClient, config: Config) -> System:
    return await _system(aiohttp_client, config)


async def test_every_reply_of_every_route_carries_the_headers(system: System) -> None:
    routes = every_route(system.client.app)
    assert len(routes) > 100 and {"/", "/api/login", "/media/api/items", "/seat/", "/phone/"} <= {
        r.path for r in routes}
    statuses: set[int] = set()
    for route in routes:
        for headers in ({}, system.bearer("admin")):
            resp = await system.client.request(route.method, filled(route.path), headers=headers)
            await resp.read()
            statuses.add(resp.status)
            check_headers(resp.headers, f"{resp.status} {route.method} {route.path}")
    assert {200, 400, 401, 403, 404} <= statuses  # successes and refusals both were checked


async def test_errors_static_files_and_the_root_page_carry_the_headers(system: System) -> None:
    client = system.client
    cases: list[tuple[str, ClientResponse]] = [
        ("root page", await client.get("/")),
        ("root icon", await client.get("/favicon.ico")),
        ("404 outside every prefix", await client.get("/no/such/page")),
        ("404 inside a service", await client.get("/api/no/such/route")),
        ("405 at the root", await client.post("/")),
        ("405 in a service", await client.delete("/api/login")),
        ("413", await client.post("/api/login", data=b'{"a":"' + b"x" * (2 << 20) + b'"}',
                                  headers={"Content-Type": "application/json"})),
        ("query token on REST", await client.get("/api/me", params={"token": system.token("admin")})),
    ]
    cases += [(path, await client.get(path)) for path in static_files(client.app)]
    assert len(cases) >= 8 + 6  # static/ and common/ of media, seat and phone
    for what, resp in cases:
        await resp.read()
        check_headers(resp.headers, what)
        assert resp.status < 500, what
    expected = {"404 outside every prefix": 404, "404 inside a service": 404, "405 at the root": 405,
                "405 in a service": 405, "413": 413, "query token on REST": 401}
    for what, resp in cases:
        if what in expected:
            assert resp.status == expected[what], what
            assert resp.content_type == "application/json", what  # a JSON refusal, root or service
    # Pages run only their own modules; the seat's sockets go only to this deployment.
    seat = (await client.get("/seat/")).headers["Content-Security-Policy"]
    assert "script-src 'self';" in seat and "style-src 'self';" in seat and "connect-src 'self' ws://" in seat
    assert "camera=(self)" in (await client.get("/phone/")).headers["Permissions-Policy"]
    assert "camera=()" in (await client.get("/media/")).headers["Permissions-Policy"]


async def test_an_unexpected_exception_still_carries_the_headers(aiohttp_client: MakeClient, config: Config,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    monkeypatch.setitem(access.ROUTES, ("GET", "/probe/boom"), access.anyone())  # else refused before it

    root = build_root(config, [])
    root.router.add_get("/boom", boom)
    service = service_app(config, "probe")
    service.router.add_get("/boom", boom)
    root.add_subapp("/probe/", service)
    client = await aiohttp_client(root)
    for path in ("/boom", "/probe/boom"):
        resp = await client.get(path)
        assert resp.status == 500, path
        check_headers(resp.headers, path)


async def test_hsts_when_the_public_url_is_https(aiohttp_client: MakeClient, config: Config) -> None:
    system = await _system(aiohttp_client, config.with_(public_url="https://bank.example"))
    for path in ("/", "/no/such/page", "/api/healthz", "/seat/", "/api/me", *static_files(system.client.app)):
        resp = await system.client.get(path)
        check_headers(resp.headers, path, https=True)
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_replies_that_carry_tokens_are_not_stored(system: System) -> None:
    client = system.client
    username, password = next(iter(system.accounts.items()))
    login = await client.post("/api/login", json={"username": username, "password": password})
    enrol = await client.post("/api/devices/enrol", json={"code": system.enrolment_code, "name": "kiosk-h"})
    start = await client.post("/api/phone/start", json={"phone": "+15550001234"})
    assert start.status == 200, await start.text()
    verify = await client.post("/api/phone/verify", json={
        "challenge_id": (await start.json())["challenge_id"], "code": system.otp.last})
    for what, resp in (("login", login), ("enrol", enrol), ("phone verify", verify)):
        assert resp.status in (200, 201), (what, await resp.text())
        assert "token" in await resp.json(), what
        assert resp.headers["Cache-Control"] == "no-store", what


async def test_sockets_refuse_pages_of_foreign_origins_before_the_upgrade(system: System) -> None:
    client = system.client
    own = f"http://{client.host}:{client.port}"
    gets = [r for r in every_route(client.app) if r.method == "GET"]
    for route in gets:
        resp = await client.get(filled(route.path), headers={**UPGRADE, "Origin": FOREIGN})
        assert resp.status == 403, route.path
        assert (await resp.json())["code"] == "origin_refused", route.path
    # The events socket: a page of this site and a client sending no Origin (the SDK) get in.
    token = {"token": system.token("teller")}
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/api/ws", params=token, origin=FOREIGN)
    assert refused.value.status == 403
    for origin in (own, None):
        ws = await client.ws_connect("/api/ws", params=token, origin=origin)
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await ws.close()
    # The video node's signalling: the foreign page is refused before its token is even looked at;
    # this site's page gets as far as the token check.
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/video/ws", params={"token": "forged"}, origin=FOREIGN)
    assert refused.value.status == 403
    with pytest.raises(WSServerHandshakeError) as unauthorised:
        await client.ws_connect("/video/ws", params={"token": "forged"}, origin=own)
    assert unauthorised.value.status == 401


async def test_configured_sites_may_open_sockets(aiohttp_client: MakeClient, config: Config) -> None:
    system = await _system(aiohttp_client, config.with_(allowed_origins=("https://branch.bank.example",),
                                                        public_url="https://bank.example"))
    token = {"token": system.token("teller")}
    for origin in ("https://branch.bank.example", "https://bank.example"):
        ws = await system.client.ws_connect("/api/ws", params=token, origin=origin)
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await ws.close()
    # Without the loopback defaults, the kiosk screen's origin (another loopback port) is foreign.
    with pytest.raises(WSServerHandshakeError) as refused:
        await system.client.ws_connect("/api/ws", params=token, origin="http://127.0.0.1:1")
    assert refused.value.status == 403


def test_origin_matching_and_the_setting() -> None:
    sites = ("http://127.0.0.1:*", "https://bank.example")
    assert origin_allowed("http://127.0.0.1:49152", "http://x:1", sites)
    assert origin_allowed("HTTPS://bank.example", "http://x:1", sites)
    assert origin_allowed("http://x:1", "http://x:1", ())
    for foreign in ("http://127.0.0.1:80.evil.example", "http://127.0.0.1:", "https://bank.example.evil",
                    "null", "http://127.0.0.2:80"):
        assert not origin_allowed(foreign, "http://x:1", sites), foreign
    from cloudbank.platform.config import load_config

    assert load_config({"allowed_origins": "https://a.example, http://10.0.0.5:*"}, environ={}).allowed_origins \
        == ("https://a.example", "http://10.0.0.5:*")
    with pytest.raises(ConfigError):
        load_config({"allowed_origins": "a.example/path"}, environ={})


async def test_no_cors_for_foreign_origins(system: System) -> None:
    for route in every_route(system.client.app):
        url = filled(route.path)
        preflight = await system.client.options(url, headers={
            "Origin": FOREIGN, "Access-Control-Request-Method": route.method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        actual = await system.client.request(route.method, url, headers={"Origin": FOREIGN, **system.bearer("admin")})
        for resp in (preflight, actual):
            await resp.read()
            assert not [h for h in resp.headers if h.lower().startswith("access-control-")], (route, dict(resp.headers))
        assert preflight.status in (403, 404, 405), route  # no route answers a preflight


async def test_a_token_in_the_url_only_where_a_browser_cannot_send_a_header(system: System) -> None:
    client = system.client
    refused = await client.get("/api/me", params={"token": system.token("admin")})
    assert refused.status == 401
    body = await refused.json()
    assert body["code"] == "token_in_url" and "Authorization: Bearer" in body["message"]
    assert (await client.get("/api/me", headers=system.bearer("admin"))).status == 200
    # Every route but the declared ones refuses it, with this same answer or as if no token came.
    for route in every_route(client.app):
        if route.path in URL_TOKEN_ROUTES:
            continue
        url = filled(route.path)
        with_url_token = await client.request(route.method, url.with_query(token=system.token("admin")))
        without = await client.request(route.method, url)
        text = await with_url_token.text()
        assert with_url_token.status == without.status or "token_in_url" in text, (route, text[:200])
        assert with_url_token.status != 200 or without.status == 200, route
    # The declared ones take it: the socket opens, the files get past the token check.
    ws = await client.ws_connect("/api/ws", params={"token": system.token("teller")})
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    await ws.close()
    wallboard = await client.ws_connect("/api/wallboard/ws", params={"token": system.token("supervisor")})
    assert (await wallboard.receive_json(timeout=10))["type"] == "wallboard"
    await wallboard.close()
    for path, role in (("/media/api/recordings/s-1/files/a.webm", "supervisor"),
                       ("/video/snapshots/s-1/teller-0001.jpg", "join")):
        resp = await client.get(path, params={"token": system.token(role)})
        assert resp.status == 404, (path, await resp.text())  # past the token: there is no such file
        assert (await client.get(path, params={"token": "forged"})).status == 401, path


async def test_every_app_limits_its_bodies(system: System) -> None:
    for app in apps(system.client.app):
        assert app._client_max_size <= 1024 * 1024, app  # noqa: SLF001 - aiohttp keeps it private
    big = b'{"a":"' + b"x" * (1024 * 1024 + 10) + b'"}'
    writes = [r for r in every_route(system.client.app) if r.method in ("POST", "PUT", "PATCH")]
    # The routes with their own larger cap: uploads stream to the store under max_upload_bytes, an
    # ID-card photo is read under its own 2 MB image limit.
    assert sorted(r.path for r in writes if getattr(r.handler, STREAMS_BODY, False)) == [
        "/api/sessions/{session_id}/id_card", "/media/api/items"]
    writes = [r for r in writes if not getattr(r.handler, STREAMS_BODY, False)]
    assert len(writes) >= 49
    for route in writes:
        for headers in ({}, system.bearer("admin"), system.bearer("supervisor"), system.bearer("teller")):
            resp = await system.client.request(route.method, filled(route.path), data=big,
                                               headers={**headers, "Content-Type": "application/json"})
            assert resp.status == 413, (route, resp.status)  # before the token or the route is looked at
            assert (await resp.json())["error"] == "too_large", route


def test_no_policy_allows_anything_inline() -> None:
    for policy in (API_CSP, page_csp(), page_csp("'self' ws: wss:", "'self' blob: mediastream:")):
        assert "unsafe" not in policy and "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
