"""Batches the live sessions' decoding passes into shared scheduler jobs.

Each session has at most one interim and one urgent pass in flight. Passes that arrive while a batch is queued or running wait
for the next one, and a job takes every waiting pass (up to ``max_batch``) at the moment it starts on a
worker thread, so N live streams cost one batched encode/decode per round instead of N separate ones.
Urgent passes (the one that turns an utterance final) have jobs of their own, at Priority.FINAL, which
run beside the interims' job (Priority.LIVE) when the scheduler has a slot for them: a final never waits
behind other streams' interims, neither in the same batch nor for the job in progress.
The scheduler's queue limits and timeouts apply to these jobs exactly as to /stt requests; they are queued
ahead of uploads' jobs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from stt.engines.base import Engine
from stt.engines.base import WindowRequest, WindowResult
from stt.inference.engine_calls import call_engine
from stt.inference.scheduler import JobStats, Priority, Scheduler
from stt import metrics

log = logging.getLogger("stt.inference.pass_batcher")
T = TypeVar("T")
_Waiter = tuple[WindowRequest, "asyncio.Future[WindowResult]", bool]  # request, its result, urgent


class PassBatcher:
    def __init__(self, scheduler: Scheduler, engine: Engine, max_batch: int = 8) -> None:
        self._scheduler = scheduler
        self._engine = engine
        self._max_batch = max_batch
        self._pending: list[_Waiter] = []
        self._lock = threading.Lock()  # the worker thread takes from _pending
        self._runners: dict[bool, asyncio.Task[None]] = {}  # urgent or not: one job of each at a time

    async def detect(self, job: Callable[[], T]) -> T:
        """A live stream's speech detection, under the scheduler's budget (Scheduler.detect)."""
        return await self._scheduler.detect(job)

    async def decode(self, request: WindowRequest, urgent: bool = False) -> WindowResult:
        future: asyncio.Future[WindowResult] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append((request, future, urgent))
        runner = self._runners.get(urgent)
        if runner is None or runner.done():
            self._runners[urgent] = asyncio.create_task(self._run(urgent))
        return await future

    async def _run(self, urgent: bool) -> None:
        priority = Priority.FINAL if urgent else Priority.LIVE
        while True:
            with self._lock:
                if not any(w[2] == urgent for w in self._pending):
                    return
            taken: list[_Waiter] = []
            try:
                results = await self._scheduler.run(lambda: self._job(taken, urgent), JobStats(), priority)
            except Exception as exc:  # Overloaded, or the engine failed: every waiting pass learns it
                self._fail(taken, exc, urgent)
                continue
            for (_, future, _), result in zip(taken, results):
                if not future.done():
                    future.set_result(result)

    def _job(self, taken: list[_Waiter], urgent: bool) -> list[WindowResult]:
        with self._lock:
            waiting = [w for w in self._pending if not w[1].cancelled()]
            batch = [w for w in waiting if w[2] == urgent][:self._max_batch]
            chosen = {id(w) for w in batch}
            self._pending = [w for w in waiting if id(w) not in chosen]
        taken.extend(batch)
        if not batch:
            return []
        metrics.observe_batch(len(batch))
        return call_engine(lambda: self._engine.decode_windows([request for request, _, _ in batch]),
                           "Live decoding failed")

    def _fail(self, taken: list[_Waiter], exc: Exception, urgent: bool) -> None:
        if not taken:  # refused before the job ran (queue full / timeout): fail what was waiting
            with self._lock:
                taken = [w for w in self._pending if w[2] == urgent]
                self._pending = [w for w in self._pending if w[2] != urgent]
        for _, future, _ in taken:
            if not future.done():
                future.set_exception(exc)
