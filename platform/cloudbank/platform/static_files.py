"""Serving a browser app's static folder (plain ES modules, no build step)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web


def add_static_app(app: web.Application, folder: Path) -> None:
    """`GET /` serves index.html; other files are served from `folder` (no directory listing)."""
    index = folder / "index.html"

    async def root(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    app.router.add_static("/static/", folder, show_index=False, follow_symlinks=False)
