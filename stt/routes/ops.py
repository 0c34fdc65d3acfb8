"""Operations: an unauthenticated health check for load balancers and orchestrators."""

from __future__ import annotations

import time
from pathlib import PurePath

from aiohttp import web

from auth.middleware import public
from stt.keys import ENGINE, SCHEDULER, STARTED_AT

routes = web.RouteTableDef()


@routes.get("/health")
@public
async def health(request: web.Request) -> web.Response:
    app = request.app
    engine, scheduler = app[ENGINE], app[SCHEDULER]
    return web.json_response({
        "status": "ok",
        "engine": engine.name,
        "model": public_model_name(engine.model_name),
        "queued": scheduler.waiting,
        "running": scheduler.running,
        "uptime_s": round(time.time() - app[STARTED_AT], 1),
    })


def public_model_name(model: str) -> str:
    """/health is public: a model given as a path shows its last component only, never where it lives."""
    return PurePath(model.replace("\\", "/").rstrip("/")).name or model


def setup(app: web.Application) -> None:
    app.add_routes(routes)
