"""GET /openapi.json and GET /docs, both public: they describe the API and hold nothing secret, and tools
(Postman, code generators, a browser) must be able to read them before anyone has a token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.middleware import public
from stt.http import apidoc as doc
from stt.http.apidoc import JSON, STR
from stt.http.docs_page import render_docs

routes = web.RouteTableDef()
SPEC = web.AppKey("openapi_spec", dict)  # built from the route tables by stt/http/openapi.py


_PAGES: dict[int, str] = {}  # by the id of the spec (build_spec's, cached for the process): rendered once


def _page(spec: dict[str, Any]) -> str:
    if id(spec) not in _PAGES:
        _PAGES[id(spec)] = render_docs(spec)
    return _PAGES[id(spec)]


@routes.get("/openapi.json")
@public
@doc.describe(doc.op("docs", "This OpenAPI document (no token)", "OpenAPI 3.1, JSON.", operationId="openapi",
                     security=[], responses={"200": {"description": "The document",
                                                     "content": {JSON: {"schema": {"type": "object"}}}}}))
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC])


@routes.get("/docs")
@public
@doc.describe(doc.op("docs", "API reference page (no token)", "This document rendered as HTML.", operationId="docs",
                     security=[],
                     responses={"200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}}))
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=_page(request.app[SPEC]), content_type="text/html", charset="utf-8")


def setup(app: web.Application, spec: dict[str, Any]) -> None:
    app[SPEC] = spec
    app.add_routes(routes)
