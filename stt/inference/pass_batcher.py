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
from collections.abc import Callable, Sequence
from typing import TypeVar

from stt.engines.base import Engine, WindowRequest, WindowResult
from stt.inference.scheduler import Priority, Scheduler
from stt.inference.window_queue import Waiter, WindowQueue

T = TypeVar("T")


class _Passes(WindowQueue[Waiter]):
    """One queue of passes (urgent or not): up to ``max_batch`` of the oldest in a job, one job at a time."""

    def __init__(self, scheduler: Scheduler, engine: Engine, priority: Priority, max_batch: int) -> None:
        super().__init__(scheduler, engine, priority, max_jobs=1, failed="Live decoding failed")
        self._max_batch = max_batch

    def choose(self, pending: Sequence[Waiter]) -> list[Waiter]:
        return list(pending[:self._max_batch])


class PassBatcher:
    def __init__(self, scheduler: Scheduler, engine: Engine, max_batch: int = 8) -> None:
        self._scheduler = scheduler
        self._queues = {urgent: _Passes(scheduler, engine, Priority.FINAL if urgent else Priority.LIVE, max_batch)
                        for urgent in (True, False)}

    async def detect(self, job: Callable[[], T]) -> T:
        """A live stream's speech detection, under the scheduler's budget (Scheduler.detect)."""
        return await self._scheduler.detect(job)

    async def decode(self, request: WindowRequest, urgent: bool = False) -> WindowResult:
        waiter = Waiter(request, asyncio.get_running_loop().create_future())
        self._queues[urgent].add([waiter])
        return await waiter.future
