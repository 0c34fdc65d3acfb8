"""Operations: health (liveness), readiness and Prometheus metrics, for balancers and orchestrators."""

from __future__ import annotations

import time
from pathlib import PurePath

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auth.middleware import public
from stt import metrics
from stt.http import apidoc as doc
from stt.http.apidoc import AUTH_ERRORS, INT, JSON, NUM, STR
from stt.http.keys import ENGINE, LIFECYCLE, LIVE_STREAMS, MODELS, SCHEDULER, SETTINGS, STARTED_AT

routes = web.RouteTableDef()
REGISTRY = web.AppKey("metrics_registry", metrics.CollectorRegistry)


@routes.get("/health")
@public
@doc.describe(doc.op("ops", "Health check (no token)", "Engine, default model, models loaded, queue and uptime.",
                     operationId="health", security=[],
                     responses={"200": {"description": "Healthy", "content": {JSON: {"schema": doc.obj(
                         ("status",), status={"const": "ok"}, engine=STR, model=STR,
                         models_loaded={"type": "array", "items": STR,
                                        "description": "Models in memory now (names of asr.models)"},
                         queued=INT, running=INT, in_flight=INT, uptime_s=NUM)}}}}))
async def health(request: web.Request) -> web.Response:
    app = request.app
    engine, registry = app[ENGINE], app[MODELS]
    queued, running = _work(app)
    return web.json_response({
        "status": "ok",
        "engine": engine.name,
        "model": public_model_name(engine.model_name),
        "models_loaded": [public_model_name(s.name) for s in registry.states() if s.loaded],
        "queued": queued,
        "running": running,
        # Requests being handled, this one aside: an upload is one request but several scheduler jobs.
        "in_flight": max(0, app[LIFECYCLE].in_flight - 1),
        "uptime_s": round(time.time() - app[STARTED_AT], 1),
    })


def _work(app: web.Application) -> tuple[int, int]:
    """Jobs waiting and running, over every loaded model."""
    registry = app.get(MODELS)
    schedulers = [t.scheduler for t in registry.loaded()] if registry is not None else []
    return sum(s.waiting for s in schedulers), sum(s.running for s in schedulers)


def public_model_name(model: str) -> str:
    """/health is public: a model given as a path shows its last component only, never where it lives."""
    return PurePath(model.replace("\\", "/").rstrip("/")).name or model


def not_ready(app: web.Application) -> list[str]:
    """Why this server should get no new work now (empty: ready)."""
    reasons = []
    scheduler = app.get(SCHEDULER)
    if app.get(ENGINE) is None or scheduler is None:
        reasons.append("model loading")
    if app[LIFECYCLE].stopping_since is not None:
        reasons.append("shutting down")
    limits, workers = app[SETTINGS].limits, app[SETTINGS].asr.workers
    if scheduler is not None and scheduler.running >= workers and scheduler.waiting >= limits.max_queue:
        reasons.append("queue full")
    return reasons


@routes.get("/ready")
@public
@doc.describe(doc.op("ops", "Readiness check (no token)",
                     "503 while draining at shutdown or while the queue is full: send work elsewhere.",
                     operationId="ready", security=[],
                     responses={"200": {"description": "Ready", "content": {JSON: {"schema": doc.obj(
                         ("status",), status={"const": "ready"})}}},
                         "503": {"description": "Not ready", "content": {JSON: {"schema": doc.obj(
                             ("status", "reasons"), status={"const": "unavailable"},
                             reasons={"type": "array", "items": STR})}}}}))
async def ready(request: web.Request) -> web.Response:
    """503 while the model loads, while draining at shutdown and while the queue is full: a balancer then
    sends new work elsewhere. /health stays 200 (the process is alive) in all three cases."""
    reasons = not_ready(request.app)
    if reasons:
        return web.json_response({"status": "unavailable", "reasons": reasons}, status=503,
                                 headers={"Retry-After": "1"})
    return web.json_response({"status": "ready"})


_METRICS_DOC = doc.describe(doc.op(
    "ops", "Prometheus metrics", "Prometheus' text exposition format (no token when the config sets `metrics_public`).",
    operationId="metrics", responses={"200": {"description": "Metrics", "content": {"text/plain": {"schema": STR}}},
                                      **doc.errors("Error", AUTH_ERRORS)}))


@_METRICS_DOC
async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _state(app: web.Application) -> metrics.State:
    def read() -> dict[str, float]:
        queued, running = _work(app)
        registry = app.get(MODELS)
        return {
            "stt_queue_depth": queued,
            "stt_jobs_running": running,
            "stt_models_loaded": registry.loaded_count() if registry is not None else 0,
            "stt_live_streams_open": len(app.get(LIVE_STREAMS, ())),
            "stt_ready": 0.0 if not_ready(app) else 1.0,
        }

    return read


def metrics_route(is_public: bool) -> web.RouteDef:
    """Prometheus scrapes with `authorization: credentials <token>`; public only when the config says so."""
    return web.get("/metrics", public(_metrics_public) if is_public else _metrics)


def site_routes(metrics_public: bool = False) -> list[web.AbstractRouteDef]:
    return [*routes, metrics_route(metrics_public)]


def setup(app: web.Application) -> None:
    app.add_routes(site_routes(app[SETTINGS].http.metrics_public))
    app[REGISTRY] = metrics.app_registry(_state(app))


@_METRICS_DOC
async def _metrics_public(request: web.Request) -> web.Response:
    return await _metrics(request)
