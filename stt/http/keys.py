"""Typed keys for the state the app holds for its whole life."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from stt.engines.base import Engine
from stt.http.lifecycle import Lifecycle
from stt.inference.registry import ModelRegistry
from stt.inference.scheduler import Scheduler
from stt.inference.transcriber import Transcriber
from stt.settings import AsrSettings, Settings

SETTINGS = web.AppKey("settings", Settings)
MODELS = web.AppKey("models", ModelRegistry)  # every configured model; lease one per request (service.model)
# The default model's Transcriber as loaded at start (engine, scheduler, queues, diarizer), and its engine and
# scheduler, for what reads them directly (ops, tests). Faces take a model from MODELS instead.
TRANSCRIBER = web.AppKey("transcriber", Transcriber)
ENGINE = web.AppKey("engine", Engine)
SCHEDULER = web.AppKey("scheduler", Scheduler)
# Loads another copy of the default model with these ``asr`` settings (blocking); set only when the app loaded
# its own engine (not one handed in by tests). The jobs' copy at a lower OS priority (stt/http/faces/jobs).
LOAD_DEFAULT_ENGINE = web.AppKey("load_default_engine", Callable[[AsrSettings], Engine])
STARTED_AT = web.AppKey("started_at", float)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LIVE_STREAMS = web.AppKey("live_streams", set)  # the open LiveStream connections
# POST /v1/listen?callback=...: Deepgram's asynchronous mode, served by the jobs face (it sets the handler).
DEEPGRAM_CALLBACK = web.AppKey("deepgram_callback", Callable[[web.Request], Awaitable[web.StreamResponse]])
