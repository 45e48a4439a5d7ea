"""Serving a browser app's static folder (plain ES modules, no build step), and the modules the
apps share (`web_common/`: DOM building, UI language) beside it at `common/`."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

COMMON = Path(__file__).parent / "web_common"


def add_static_app(app: web.Application, folder: Path) -> None:
    """`GET /` serves index.html; other files are served from `folder` at `static/` and the shared
    modules at `common/` (no directory listing, no symlinks followed)."""
    index = folder / "index.html"

    async def root(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    app.router.add_static("/static/", folder, show_index=False, follow_symlinks=False)
    app.router.add_static("/common/", COMMON, show_index=False, follow_symlinks=False)
