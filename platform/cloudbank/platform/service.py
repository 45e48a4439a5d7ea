"""What every cloudbank service app shares: typed app keys, its Redis and database resources,
JSON errors, `GET healthz`, and token checks on requests.

Each subsystem's `create_app(config)` starts from `service_app(config, name)`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudbank.platform import access
from cloudbank.platform.audit import AuditChain
from cloudbank.platform.config import Config
from cloudbank.platform.errors import ApiError, Forbidden, TooLarge, TooManyRequests, Unauthorized
from cloudbank.platform.records import create_engine, migrate
from cloudbank.platform.redis_pool import redis_client as redis_client  # re-exported: tests and benches use it
from cloudbank.platform.redis_pool import redis_for
from cloudbank.platform.tokens import Claims, KeyRing
from cloudbank.platform.web_security import (
    API_CSP,
    NO_DEVICES,
    Policy,
    body_limit,
    origin_of,
    protect,
    websocket_origins,
)
from cloudbank.platform.web_security import Handler as Handler  # re-exported: the apps' middlewares use it

log = logging.getLogger("cloudbank")

CONFIG = web.AppKey("config", Config)
REDIS = web.AppKey("redis", Redis)
ENGINE = web.AppKey("engine", AsyncEngine)
KEYS = web.AppKey("keys", KeyRing)
AUDIT = web.AppKey("audit", AuditChain)
SERVICE = web.AppKey("service", str)
STARTED = web.AppKey("started", float)



async def _resources(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    redis = redis_for(config)
    engine = create_engine(config.effective_database_url)
    await migrate(engine)
    keys = KeyRing(engine)
    await keys.load()
    app[REDIS] = redis
    app[ENGINE] = engine
    app[KEYS] = keys
    app[AUDIT] = AuditChain(engine)
    yield
    await redis.aclose()
    await engine.dispose()


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is JSON `{"error", "message", ...}` with the right status; nothing else leaks."""
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return web.json_response(exc.to_json(), status=exc.status, headers=headers)
    except web.HTTPRequestEntityTooLarge:
        return web.json_response(TooLarge("the body is too large").to_json(), status=413)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response({"error": exc.reason.lower().replace(" ", "_"),
                                  "message": exc.text or exc.reason}, status=exc.status,
                                 headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except REDIS_DOWN as exc:
        # Redis restarting or unreachable: nothing was done; the client should come back shortly.
        log.warning("%s %s: Redis unavailable (%s)", request.method, request.path, type(exc).__name__)
        return _unavailable("the service's data store (Redis) is unreachable; try again in a few seconds")
    except DBAPIError as exc:
        if not exc.connection_invalidated and not isinstance(exc.orig, ConnectionError | OSError):
            raise
        log.warning("%s %s: database unavailable (%s)", request.method, request.path, type(exc.orig).__name__)
        return _unavailable("the service's database is unreachable; try again in a few seconds")


RETRY_AFTER_S = 5
# What Redis restarting or unreachable raises: callers answer 503 / retry quietly (no traceback).
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


def _unavailable(message: str) -> web.Response:
    return web.json_response({"error": "unavailable", "message": message, "retry_after": RETRY_AFTER_S},
                             status=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def check_dependencies(app: web.Application) -> dict[str, str]:
    """Ping Redis and the database; each maps to "ok" or what went wrong."""
    deps: dict[str, str] = {}
    try:
        await asyncio.wait_for(app[REDIS].ping(), 2)
        deps["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", and we say which
        deps["redis"] = f"down: {type(exc).__name__}: {exc}"[:200]
    try:
        async with app[ENGINE].connect() as conn:
            await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), 2)
        deps["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        deps["database"] = f"down: {type(exc).__name__}: {exc}"[:200]
    return deps


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    deps = await check_dependencies(app)
    down = [name for name, state in deps.items() if state != "ok"]
    body: dict[str, Any] = {"status": "ok" if not down else "degraded", "service": app[SERVICE],
                            "dependencies": deps, "uptime_s": round(time.monotonic() - app[STARTED], 1)}
    if down:
        body["down"] = down
    return web.json_response(body, status=200 if not down else 503)


def service_app(config: Config, name: str, client_max_size: int = 1024 * 1024, *, csp: str = API_CSP,
                permissions: str = NO_DEVICES) -> web.Application:
    """A service app with resources, JSON errors, the access table's role checks, the web security
    headers (`csp` and `permissions` for a browser app's pages), body limits, WebSocket origin checks
    and `GET healthz`; add routes (each needs an entry in access.ROUTES)."""
    app = web.Application(middlewares=[json_errors, body_limit(client_max_size), access_rules(name),
                                       websocket_origins(allowed_sites(config))], client_max_size=client_max_size)
    protect(app, web_policy(config, csp, permissions))
    app[CONFIG] = config
    app[SERVICE] = name
    app[STARTED] = time.monotonic()
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", healthz)
    return app


def web_policy(config: Config, csp: str = API_CSP, permissions: str = NO_DEVICES) -> Policy:
    return Policy(csp, permissions, https=config.base_url.startswith("https://"))


def allowed_sites(config: Config) -> tuple[str, ...]:
    """Origins whose pages may open this deployment's WebSockets besides the request's own."""
    return tuple(s for s in (origin_of(config.base_url), *config.allowed_origins) if s)


def bearer(request: web.Request, url_token: bool = False) -> str:
    """The request's bearer token. In the URL (`?token=`) only where the route allows it (`url_token`):
    a socket or a media element, which a browser opens without headers. Elsewhere a URL token is
    refused, so it is never the habit that puts tokens into logs, history and shared links."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if "token" in request.query and not url_token:
        raise Unauthorized("a token in the URL is refused here; send it as 'Authorization: Bearer <token>'",
                           code="token_in_url")
    return request.query.get("token", "")


CLAIMS = web.RequestKey("claims", Claims)  # the request's verified token, once per request


async def authenticate(request: web.Request, roles: Iterable[str] | None = None,
                       scope: str | None = "api", url_token: bool = False) -> Claims:
    """The caller's verified claims (401/403 otherwise); revoked tokens are refused. `url_token`:
    this route takes `?token=` (WebSockets, files that media elements load). Who may call a route is
    the access table's (access.ROUTES, checked before the handler): handlers pass `roles` only where a
    helper serves several routes. The token is verified once per request, role and scope at every call."""
    claims = request.get(CLAIMS)
    if claims is None:
        token = bearer(request, url_token)
        if not token:
            raise Unauthorized("sign in first: send 'Authorization: Bearer <token>'")
        claims = await request.app[KEYS].verify(token)
        token_revoked, holder_revoked = await request.app[REDIS].mget(
            f"revoked:{claims.jti}", f"revoked:{claims.role}:{claims.sub}")
        if token_revoked:
            raise Unauthorized("the token was revoked; sign in again")
        if holder_revoked:
            raise Forbidden(f"this {claims.role} was revoked; enrol it again with a new code")
        request[CLAIMS] = claims
    allowed = tuple(roles) if roles is not None else None
    if allowed is not None and claims.role not in allowed:
        raise Forbidden(f"a {claims.role} token cannot do this (needs {' or '.join(allowed)})", needs=list(allowed))
    if scope is not None and claims.scope != scope:
        raise Forbidden("the token is for another scope")
    return claims


def access_rules(service: str) -> Middleware:
    """Each route's entry in the access table decides who may call it, before the handler: 401
    without a token where one is needed, 403 for another role; a route with no entry is refused."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if request.match_info.http_exception is not None or isinstance(resource, web.StaticResource):
            return await handler(request)  # a 404/405, or a public asset: nothing to authorise
        key, rule = access.rule_for(request, service)
        if rule is None:
            log.error("%s has no entry in the access table (cloudbank/platform/access.py): refused", key)
            raise Forbidden("this route has no access rule yet; nobody may call it", rule="missing")
        if not rule.open:
            await authenticate(request, roles=rule.roles, scope=None if "join" in rule.roles else "api",
                               url_token=rule.url_token)
        return await handler(request)

    return middleware


async def revoke(redis: Redis, claims: Claims) -> None:
    ttl = max(1, int(claims.exp - time.time()) + 1)
    await redis.set(f"revoked:{claims.jti}", "1", ex=ttl)


async def revoke_holder(redis: Redis, role: str, sub: str, ttl_s: int) -> None:
    """Refuse every token of `role`/`sub` (a revoked kiosk's long-lived credential) for `ttl_s`."""
    await redis.set(f"revoked:{role}:{sub}", "1", ex=max(1, ttl_s))
