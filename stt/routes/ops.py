"""Operations: an unauthenticated health check for load balancers and orchestrators."""

from __future__ import annotations

import time

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
        "model": engine.model_name,
        "queued": scheduler.waiting,
        "running": scheduler.running,
        "uptime_s": round(time.time() - app[STARTED_AT], 1),
    })


def setup(app: web.Application) -> None:
    app.add_routes(routes)
