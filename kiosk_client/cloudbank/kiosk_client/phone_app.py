"""Serves the phone (H5) client page (mounted at /phone/) under a Content-Security-Policy.

Only the page's own modules run (no inline script, no eval, no third-party origin). WebSockets may
go to any ws(s) origin because the video node a call lands on can be another host than the page's.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.service import service_app
from cloudbank.platform.static_files import add_static_app
from cloudbank.platform.web_security import CAMERA_AND_MIC, page_csp

STATIC = Path(__file__).parent / "phone_static"

# The video node a call lands on may be another host than the page's: sockets to any ws(s) origin.
CONTENT_SECURITY_POLICY = page_csp(connect="'self' ws: wss:", media="'self' blob: mediastream:")


def create_app(config: Config) -> web.Application:
    app = service_app(config, "phone", csp=CONTENT_SECURITY_POLICY, permissions=CAMERA_AND_MIC)
    add_static_app(app, STATIC)
    return app
