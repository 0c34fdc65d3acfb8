"""The browser page: GET / and its static files from web/, public (the token is typed into the page)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from auth.middleware import public
from stt.http import apidoc as doc
from stt.http.apidoc import JSON, STR

WEB_DIR = Path(__file__).resolve().parents[3] / "web"
FILES = {  # served by name only: no path from the URL ever reaches the file system
    "app.js": "text/javascript",
    "capture-worklet.js": "text/javascript",
    "style.css": "text/css",
}
routes = web.RouteTableDef()


@routes.get("/")
@public
@doc.describe(doc.op("page", "Browser page (no token)", "Live microphone transcription and an upload form; "
                     "the token is typed into the page.", operationId="page", security=[],
                     responses={"200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}}))
async def index(request: web.Request) -> web.FileResponse:
    return _file("index.html", "text/html")


@routes.get("/favicon.ico")
@public
@doc.describe(doc.op("page", "No icon (no token)", "Answers 204 so browsers stop asking.", operationId="favicon",
                     security=[], responses={"204": {"description": "No content"}}))
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask on every page load; a 401 here would only be noise


@routes.get("/web/{name}")
@public
@doc.describe(doc.op(
    "page", "The page's scripts and style (no token)", "`app.js`, `capture-worklet.js`, `style.css`.",
    operationId="pageAsset", security=[], parameters=[{"name": "name", "in": "path", "required": True, "schema": STR}],
    responses={"200": {"description": "The file", "content": {
        "text/javascript": {"schema": STR}, "text/css": {"schema": STR}}},
        "404": {"description": "No such file", "content": {JSON: {"schema": doc.ref("Error")}}}}))
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
