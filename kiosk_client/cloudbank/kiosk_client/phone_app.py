"""Serves the phone (H5) client page (mounted at /phone/)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from cloudbank.platform.config import Config
from cloudbank.platform.service import service_app
from cloudbank.platform.static_files import add_static_app

STATIC = Path(__file__).parent / "phone_static"


def create_app(config: Config) -> web.Application:
    app = service_app(config, "phone")
    add_static_app(app, STATIC)
    return app
