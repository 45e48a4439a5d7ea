"""The teller seat console's server (mounted at /seat/): serves the browser app under a strict
Content-Security-Policy, and `config.json` telling the app where the platform API lives."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.service import CONFIG, service_app
from cloudbank.platform.static_files import add_static_app
from cloudbank.platform.web_security import CAMERA_AND_MIC, page_csp
from cloudbank.seat import seat_api

STATIC = Path(__file__).parent / "static"


def websocket_origins(config: Config) -> list[str]:
    """ws(s):// origins of this deployment's public URL: the events socket and the video node's
    signalling live there (browsers do not all let 'self' cover WebSocket schemes)."""
    parts = urlsplit(config.base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return [f"{scheme}://{parts.netloc}"]


def content_security_policy(config: Config) -> str:
    """Only our own modules run; sockets go to this deployment's events and video signalling."""
    return page_csp(connect=" ".join(["'self'", *websocket_origins(config)]), media="'self' blob: mediastream:")


def create_app(config: Config) -> web.Application:
    # Camera and microphone for this origin only; nothing else the console does not use.
    app = service_app(config, "seat", csp=content_security_policy(config), permissions=CAMERA_AND_MIC)

    async def client_config(request: web.Request) -> web.Response:
        cfg = request.app[CONFIG]
        return web.json_response(
            {"api": "/api/", "ring_timeout_s": cfg.ring_timeout_s, "wrapup_s": cfg.wrapup_s,
             "service_level_s": cfg.service_level_s},
            headers={"Cache-Control": "no-cache"})

    app.router.add_get("/config.json", client_config)
    app.add_routes(seat_api.routes)
    add_static_app(app, STATIC)
    return app
