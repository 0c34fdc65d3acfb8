"""The application factory: middlewares, the app-lifetime model registry (a Transcriber per loaded model:
engine, scheduler, queues, diarizer) and the API faces of stt/http/faces/registry.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from auth import client_address
from auth.middleware import auth_middleware, token_from_subprotocol
from auth.throttle import FailureThrottle
from auth.tokens import TokenStore, generate_token
from stt.http.audio_budget import AUDIO_BUDGET, AudioBudget
from stt.http.cors import setup_cors
from stt.engines.base import Engine
from stt.engines.lowered import lowered_copy
from stt.http.errors import error_middleware
from stt.http.expect import expect_middleware
from stt.http.keys import ENGINE, LIFECYCLE, LOAD_DEFAULT_ENGINE, MODELS, SCHEDULER, SETTINGS, STARTED_AT, TRANSCRIBER
from stt.http.lifecycle import Lifecycle
from stt.http.observability import add_request_id_header, request_id_middleware
from stt.http.faces.face import FACES, app_face
from stt.http.faces.registry import FACES as REGISTERED_FACES
from stt.http.openapi import build_spec
from stt.http.routes import docs, ops, page
from stt.inference.registry import Loader, ModelRegistry, Policy
from stt.inference.transcriber import Budget, Transcriber
from stt.memory_budget import MemoryBudget, default_max_held_bytes
from stt.settings import AsrSettings, Settings

log = logging.getLogger("stt.http.app")
EngineFactory = Callable[[AsrSettings], Engine]


def create_app(settings: Settings, *, engine: Engine | None = None,
               engine_factory: EngineFactory | None = None) -> web.Application:
    """``engine``: use this already-loaded engine (tests share one); otherwise ``engine_factory`` (default:
    the configured real model) loads it once at start-up."""
    store = TokenStore(settings.http.allowed_tokens or [_generated_token()])
    limits = settings.limits
    throttle = FailureThrottle(limits.auth_max_failures, limits.auth_window_seconds)
    lifecycle = Lifecycle(limits.shutdown_timeout_seconds)
    memory = MemoryBudget(limits.max_held_bytes or default_max_held_bytes())
    log.info("memory budget for requests in flight (limits.max_held_bytes): %d MiB", memory.max_bytes >> 20)
    audio_budget = AudioBudget(limits.max_held_audio_seconds, decoders=settings.asr.workers + 1, memory=memory)
    app = web.Application(
        client_max_size=settings.http.request_max_size,
        middlewares=[request_id_middleware, lifecycle.middleware(), error_middleware, expect_middleware,
                     auth_middleware(store, throttle, extract=token_from_subprotocol,
                                     wrong_token_is_401=_face_answers_401),
                     audio_budget.middleware()],
    )
    app[SETTINGS] = settings
    client_address.install(app, settings.http.trusted_proxies)
    app[LIFECYCLE] = lifecycle
    app[AUDIO_BUDGET] = audio_budget
    app.on_shutdown.append(lifecycle.on_shutdown)
    app[STARTED_AT] = time.time()
    app.on_response_prepare.append(add_request_id_header)
    setup_cors(app, settings.http.cors_origins)
    app.cleanup_ctx.append(_transcriber_ctx(engine, engine_factory))
    app[FACES] = REGISTERED_FACES
    for face in REGISTERED_FACES:
        app.add_routes(face.routes)
        if face.setup is not None:
            face.setup(app)
    ops.setup(app)
    docs.setup(app, build_spec())
    page.setup(app)
    return app


def _face_answers_401(request: web.Request) -> bool:
    """The wrong-token status of the face called (OpenAI's and Deepgram's SDKs raise AuthenticationError only
    on 401); the native API and paths of no face keep the 401 (no token) / 403 (wrong token) split."""
    face = app_face(request)
    return face is not None and face.wrong_token_status == 401


# For every server that runs the app (run_app, the tests' servers): the HTTP parser must not inflate gzip/deflate
# bodies itself. It would do so on the event loop as the bytes arrive, before auth; stt/http/bodies.py inflates in
# a thread, after auth, bounded by request_max_size.
PARSER_OPTIONS: dict[str, Any] = {"auto_decompress": False}


def server_options(settings: Settings) -> dict[str, Any]:
    """Options for the HTTP server that runs the app (``web.run_app`` and the tests' server alike)."""
    return {
        **PARSER_OPTIONS,
        # A client that goes away cancels its handler: queued work leaves the queue and never runs
        # (a running transcription finishes in its thread; see Scheduler). Our handlers have no side effect
        # that must complete, which is when aiohttp recommends this.
        "handler_cancellation": True,
        # On SIGTERM/SIGINT aiohttp waits this long for in-flight handlers, then asks them to stop and waits
        # up to this long again; what still runs after that is cancelled (see stt/http/lifecycle.py).
        "shutdown_timeout": settings.limits.shutdown_timeout_seconds,
        "access_log": None,  # our own access log names request ids and timings
    }


def _generated_token() -> str:
    token = generate_token()
    # Printed once to the console, never to the log: log files are shipped and kept.
    print(f"No token configured: generated one for this run: {token}", file=sys.stderr, flush=True)
    return token


def _transcriber_ctx(engine: Engine | None, factory: EngineFactory | None):  # type: ignore[no-untyped-def]
    """The model registry (one Transcriber per loaded model: engine, scheduler, window queues, diarizer): the
    default model loaded at start-up, the others on first use; every model drained and closed at cleanup."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        asr, limits = settings.asr, settings.limits
        budget = Budget(asr.workers, asr.reserved_workers, limits.max_queue, limits.queue_timeout_seconds,
                        asr.upload_batch_seconds)
        sources, default = model_sources(asr, engine.model_name if engine is not None else None)
        registry = ModelRegistry(sources, default, _loader(asr, factory, budget),
                                 Policy(asr.model_ttl_seconds, asr.max_loaded_models, asr.pin_default_model,
                                        limits.queue_timeout_seconds))
        loaded = engine if engine is not None else await _load(dataclasses.replace(asr, model=sources[default]),
                                                               factory)
        copy = _interims_copy(asr, factory, sources[default]) if engine is None else None
        transcriber = Transcriber(loaded, budget, copy)
        registry.adopt(default, transcriber, owned=engine is None)  # an engine handed in belongs to the caller
        registry.start()
        app[MODELS], app[TRANSCRIBER], app[ENGINE], app[SCHEDULER] = (registry, transcriber, loaded,
                                                                      transcriber.scheduler)
        if engine is None:
            make, source = _maker(factory), sources[default]
            app[LOAD_DEFAULT_ENGINE] = lambda changed: make(dataclasses.replace(changed, model=source))
        yield
        # Finish what was accepted before the models go away (graceful shutdown), within what is left of the
        # shutdown budget. A transcription still running then cannot be interrupted: it is abandoned.
        abandoned = await registry.close(max(0.0, app[LIFECYCLE].deadline() - time.monotonic()))
        if abandoned:
            log.error("shutdown timeout: abandoning %d running transcription(s)", abandoned)

    return ctx


def model_sources(asr: AsrSettings, handed_in: str | None = None) -> tuple[dict[str, str], str]:
    """asr.models (name -> bundled model or path) and the default's name: ``asr.model`` when it is one of
    those names, else ``asr.model`` is itself a source, registered first under its own name (an engine
    handed in: under the engine's model name)."""
    if asr.model in asr.models:
        return dict(asr.models), asr.model
    name = handed_in or asr.model
    return {name: asr.model, **{k: v for k, v in asr.models.items() if k != name}}, name


def _loader(asr: AsrSettings, factory: EngineFactory | None, budget: Budget) -> Loader:
    def load(name: str, source: str) -> Transcriber:
        """Blocking (the registry runs it in a thread)."""
        return Transcriber(_maker(factory)(dataclasses.replace(asr, model=source)), budget,
                           _interims_copy(asr, factory, source))

    return load


def _interims_copy(asr: AsrSettings, factory: EngineFactory | None, source: str) -> Callable[[], Engine] | None:
    """The loader of the idle-class copy live interims run on (``asr.idle_interims``): one replica of ``source``."""
    if not asr.idle_interims or asr.engine != "faster-whisper" or asr.device != "cpu":
        return None  # (on a GPU the OS's CPU priority arbitrates nothing)
    make, changed = _maker(factory), dataclasses.replace(asr, model=source, workers=1, reserved_workers=0)
    return lambda: lowered_copy(lambda: make(changed), 0, True, "live interims")


def _maker(factory: EngineFactory | None) -> EngineFactory:
    """The factory handed in (tests), else the real loader (imported only when used)."""
    if factory is None:
        from stt.engines.factory import load_engine

        return load_engine
    return factory


async def _load(asr: AsrSettings, factory: EngineFactory | None) -> Engine:
    started = time.monotonic()
    loaded = await asyncio.to_thread(_maker(factory), asr)
    log.info("loaded %s model %r in %.1f s", loaded.name, asr.model, time.monotonic() - started)
    return loaded


def unfinished_work(app: web.Application) -> int:
    """After the app stopped: accepted requests that got no answer, or transcriptions still running."""
    registry = app.get(MODELS)
    running = registry.running() if registry is not None else 0  # over every model, loaded or just closed
    # A cut-off request's transcription may still be running: the larger count, not the sum.
    return max(app[LIFECYCLE].cut_off, running)
