"""Serving a browser app's static folder (plain ES modules, no build step), and the modules the
apps share (`web_common/`: DOM building, UI language) beside it at `common/`."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

COMMON = Path(__file__).parent / "web_common"


class StaticFolder(web.StaticResource):
    """aiohttp's static folder, where a name the file system refuses (too long: ENAMETOOLONG, or
    any other OSError while resolving it) is a 404 rather than an unhandled 500."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._handle(request)
        except OSError:
            raise web.HTTPNotFound() from None


def add_static(app: web.Application, prefix: str, folder: Path) -> None:
    """Serve `folder` at `prefix` (no directory listing, no symlinks followed)."""
    app.router.register_resource(StaticFolder(prefix.rstrip("/"), folder, show_index=False,
                                              follow_symlinks=False))


def add_static_app(app: web.Application, folder: Path) -> None:
    """`GET /` serves index.html; other files are served from `folder` at `static/` and the shared
    modules at `common/`."""
    index = folder / "index.html"

    async def root(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", root)
    add_static(app, "/static/", folder)
    add_static(app, "/common/", COMMON)
