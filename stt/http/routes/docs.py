"""GET /openapi.json and GET /docs, both public: they describe the API and hold nothing secret, and tools
(Postman, code generators, a browser) must be able to read them before anyone has a token."""

from __future__ import annotations

import functools

from aiohttp import web

from auth.middleware import public
from stt.http.docs_page import render_docs
from stt.http.openapi import build_spec

routes = web.RouteTableDef()


@functools.cache
def _page() -> str:
    return render_docs(build_spec())


@routes.get("/openapi.json")
@public
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_spec())


@routes.get("/docs")
@public
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html", charset="utf-8")


def setup(app: web.Application) -> None:
    app.add_routes(routes)
