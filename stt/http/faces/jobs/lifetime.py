"""The jobs' app-lifetime parts: the store (SQLite or PostgreSQL), the runner and the callback deliverer, made
in one ``cleanup_ctx`` after the Transcriber's (so they stop before it drains), and the HTTP client that
delivers callbacks (aiohttp's)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from stt.http.audio_budget import AUDIO_BUDGET
from stt.http.faces.jobs.render import callback_body
from stt.engines.base import Engine
from stt.engines.lowered import lowered_copy
from stt.http.keys import LOAD_DEFAULT_ENGINE, MODELS, SETTINGS, TRANSCRIBER
from stt.jobs import webhooks
from stt.jobs.runner import JobRunner
from stt.jobs.store import AsyncJobStore, SqliteJobStore
from stt.inference.scheduler import JOBS_LANE
from stt.settings import AsrSettings, JobsSettings

log = logging.getLogger("stt.http.jobs")
RESPONSE_READ_MAX = 64 * 1024  # bytes of a callback receiver's answer read (and dropped)


@dataclasses.dataclass
class Jobs:
    store: AsyncJobStore
    runner: JobRunner
    deliverer: webhooks.Deliverer


JOBS = web.AppKey("jobs", Jobs)


def sender(session: aiohttp.ClientSession, timeout_s: float) -> webhooks.Send:
    """One delivery attempt: no redirects followed, the answer read up to RESPONSE_READ_MAX, a total timeout."""

    async def send(method: str, url: str, headers: dict[str, str], body: bytes) -> webhooks.Response:
        try:
            async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                await response.content.read(RESPONSE_READ_MAX)  # bounded: the answer is not used
                ok = 200 <= response.status < 300
                return webhooks.Response(response.status, None if ok else f"HTTP {response.status}")
        except TimeoutError:
            return webhooks.Response(None, f"no answer within {timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return webhooks.Response(None, type(exc).__name__)

    return send


def niced_engine(load: Callable[[AsrSettings], Engine], asr: AsrSettings, nice: int, idle: bool) -> Engine:
    """Blocking: a copy of the default model whose threads run at OS priority ``nice`` (and in Linux's
    SCHED_IDLE class when ``idle``), for jobs' work only (stt/engines/lowered.py). Its calls take the scheduler's
    jobs lane (``workers`` slots, one a replica): bounded, and never holding a shared slot while they wait for
    the cores."""
    return lowered_copy(lambda: load(dataclasses.replace(asr, reserved_workers=0)), nice, idle, "jobs")


def _open_store(settings: JobsSettings) -> Any:
    if settings.database_url:
        from stt.jobs.postgres import PostgresJobStore  # psycopg only where PostgreSQL is used

        return PostgresJobStore(settings.database_url)
    assert settings.dir is not None
    store = SqliteJobStore(settings.dir)
    requeued = store.requeue_interrupted()
    if requeued:
        log.warning("jobs: %d job(s) interrupted by the last stop start again", requeued)
    return store


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    jobs = settings.jobs
    if jobs.dir is None and jobs.database_url is None:
        yield  # no jobs: their routes answer 503
        return
    store = AsyncJobStore(await asyncio.to_thread(_open_store, jobs))
    # Jobs run on the default model, leased for the app's life: it is never unloaded under the runner, pinned
    # or not (choosing a model per job is not built yet).
    lease = await app[MODELS].acquire(None)
    transcriber = app[TRANSCRIBER]
    # No proxies from the environment, no cookies: a callback goes straight to the listed host.
    session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                                    connector=aiohttp.TCPConnector(limit=16))
    deliverer = webhooks.Deliverer(store, sender(session, jobs.callback_timeout_seconds), jobs.webhook_secret or "",
                                   jobs.callback_max_attempts, jobs.callback_timeout_seconds + 30)
    load = app.get(LOAD_DEFAULT_ENGINE)
    # The niced copy is loaded by the first job (not at start): a server that gets no job holds no second model.
    lower = jobs.nice or jobs.sched_idle
    load_copy = functools.partial(niced_engine, load, settings.asr, jobs.nice, jobs.sched_idle) if lower and load \
        else None
    if load_copy is not None:
        transcriber.scheduler.add_lane(JOBS_LANE, settings.asr.workers)
    runner = JobRunner(store, transcriber, settings.asr.upload_batch_seconds, jobs,
                       callback_body(transcriber.engine), on_end=deliverer.wake,
                       memory=app[AUDIO_BUDGET].memory, load_engine=load_copy)
    app[JOBS] = Jobs(store, runner, deliverer)
    runner.start()
    deliverer.start()
    try:
        yield
    finally:
        await runner.stop()
        await deliverer.stop()
        await session.close()
        await store.close()
        if runner.loaded_engine is not None:
            await asyncio.to_thread(runner.loaded_engine.close)
        app[MODELS].release(lease)
