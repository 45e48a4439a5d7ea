"""Serves the phone (H5) client page (mounted at /phone/) under a Content-Security-Policy.

Only the page's own modules run (no inline script, no eval, no third-party origin). WebSockets may
go to any ws(s) origin because the video node a call lands on can be another host than the page's.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.service import Handler, service_app
from cloudbank.platform.static_files import add_static_app

STATIC = Path(__file__).parent / "phone_static"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self' ws: wss:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


@web.middleware
async def page_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self), geolocation=(), payment=()"
    return response


def create_app(config: Config) -> web.Application:
    app = service_app(config, "phone")
    app.middlewares.append(page_policy)
    add_static_app(app, STATIC)
    return app
