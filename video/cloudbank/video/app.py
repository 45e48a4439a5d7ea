"""The WebRTC video node (mounted at /video/)."""

from __future__ import annotations

from aiohttp import web

from cloudbank.platform.config import Config
from cloudbank.platform.service import service_app


def create_app(config: Config) -> web.Application:
    return service_app(config, "video")
