"""Typed keys for the state the app holds for its whole life."""

from __future__ import annotations

from aiohttp import web

from stt.inference.pass_batcher import PassBatcher
from stt.engines.base import Engine
from stt.inference.window_batcher import WindowBatcher
from stt.http.lifecycle import Lifecycle
from stt.inference.scheduler import Scheduler
from stt.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
SCHEDULER = web.AppKey("scheduler", Scheduler)
STARTED_AT = web.AppKey("started_at", float)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LIVE_BATCHER = web.AppKey("live_batcher", PassBatcher)
WINDOW_BATCHER = web.AppKey("window_batcher", WindowBatcher)  # uploads' speech windows, every client's
LIVE_STREAMS = web.AppKey("live_streams", set)  # the open LiveStream connections
