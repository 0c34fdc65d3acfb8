"""The browser page: GET / and its static files from web/, public (the token is typed into the page)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from auth.middleware import public

WEB_DIR = Path(__file__).resolve().parents[3] / "web"
FILES = {  # served by name only: no path from the URL ever reaches the file system
    "app.js": "text/javascript",
    "capture-worklet.js": "text/javascript",
    "style.css": "text/css",
}
routes = web.RouteTableDef()


@routes.get("/")
@public
async def index(request: web.Request) -> web.FileResponse:
    return _file("index.html", "text/html")


@routes.get("/favicon.ico")
@public
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask on every page load; a 401 here would only be noise


@routes.get("/web/{name}")
@public
async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound(reason=f"No such file: {name}")
    return _file(name, FILES[name])


def _file(name: str, content_type: str) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / name, headers={"Content-Type": f"{content_type}; charset=utf-8",
                                                     "Cache-Control": "no-cache"})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
