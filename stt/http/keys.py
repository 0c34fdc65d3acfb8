"""Typed keys for the state the app holds for its whole life."""

from __future__ import annotations

from aiohttp import web

from stt.engines.base import Engine
from stt.http.lifecycle import Lifecycle
from stt.inference.scheduler import Scheduler
from stt.inference.transcriber import Transcriber
from stt.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
TRANSCRIBER = web.AppKey("transcriber", Transcriber)  # the model's engine, scheduler, queues and diarizer
# The Transcriber's engine and scheduler, for what reads them directly (ops, tests).
ENGINE = web.AppKey("engine", Engine)
SCHEDULER = web.AppKey("scheduler", Scheduler)
STARTED_AT = web.AppKey("started_at", float)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LIVE_STREAMS = web.AppKey("live_streams", set)  # the open LiveStream connections
