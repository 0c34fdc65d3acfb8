"""The one pattern behind both batchers: windows wait in a queue, and scheduler jobs decode them in batches.

A waiter (a window and the future of its result) joins ``pending`` under a lock; runner tasks (at most
``max_jobs`` at once) each run scheduler jobs until nothing is pending. A job takes its batch (``choose``) at
the moment it starts on a worker thread, so whatever arrived while it was queued joins it; waiters whose
caller left (their future is done) are dropped then. An engine failure, or a refusal by the scheduler, fails
the waiters concerned. Live passes (``pass_batcher.py``) and uploads' windows (``window_batcher.py``) differ
only in their priority, their queue bounds and how a batch is chosen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import Generic, TypeVar

from stt import metrics
from stt.engines.base import Engine, WindowRequest, WindowResult
from stt.inference.engine_calls import call_engine
from stt.inference.scheduler import JobStats, Priority, Scheduler


@dataclasses.dataclass(eq=False)
class Waiter:
    request: WindowRequest
    future: asyncio.Future[WindowResult]


W = TypeVar("W", bound=Waiter)


class WindowQueue(Generic[W]):
    def __init__(self, scheduler: Scheduler, engine: Engine, priority: Priority, *, max_jobs: int = 1,
                 bounded: bool = True, failed: str = "Transcription failed") -> None:
        """``bounded``: the scheduler's queue limit and timeout apply (False: work admitted earlier);
        ``failed``: how an engine failure's message starts."""
        self._scheduler, self._engine, self._priority = scheduler, engine, priority
        self._max_jobs, self._bounded, self._failed = max_jobs, bounded, failed
        self._lane: str | None = None  # the scheduler's lane its jobs take (None: the shared slots)
        self._pending: list[W] = []
        self._lock = threading.Lock()  # the worker thread takes from _pending
        self._runners: set[asyncio.Task[None]] = set()

    def move_to(self, engine: Engine, lane: str) -> None:
        """From the next job on, decode on ``engine`` (a lowered-priority copy) on the scheduler's ``lane``."""
        self._engine, self._lane = engine, lane

    def choose(self, pending: Sequence[W]) -> list[W]:
        """The next batch from the waiters still wanted, oldest first (called under the lock)."""
        raise NotImplementedError

    def add(self, waiters: Sequence[W]) -> None:
        with self._lock:
            self._pending += waiters
        # A runner that returned is done at once (its done-callback only runs later): count the live ones.
        self._runners = {r for r in self._runners if not r.done()}
        if len(self._runners) < self._max_jobs:
            self._runners.add(asyncio.create_task(self._run()))

    async def ready(self) -> None:
        """Hook: awaited before each job is queued (live interims wait while finals decode)."""

    def busy(self) -> bool:
        """Waiters are queued, or a job is queued or running."""
        with self._lock:
            if self._pending:
                return True
        # tuple(): one C call under the GIL, safe while the loop adds a runner (choose asks from a worker thread)
        return any(not r.done() for r in tuple(self._runners))

    async def _run(self) -> None:
        try:
            await self._jobs()
        finally:
            self.ended()

    def ended(self) -> None:
        """Hook: a runner stopped (nothing pending when it looked)."""

    async def _jobs(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
            await self.ready()
            taken: list[W] = []
            stats = JobStats()
            try:
                engine = self._engine  # the one the job's lane belongs to (move_to may come meanwhile)
                results = await self._scheduler.run(lambda: self._job(taken, engine), stats, self._priority,
                                                    bounded=self._bounded, lane=self._lane)
            except Exception as exc:  # refused (queue full, timeout) or the engine failed: the waiters learn it
                self._fail(taken, exc)
                continue
            self.finished(taken, stats)
            for waiter, result in zip(taken, results):
                if not waiter.future.done():
                    waiter.future.set_result(result)

    def _job(self, taken: list[W], engine: Engine) -> list[WindowResult]:
        with self._lock:
            self._pending = [w for w in self._pending if not w.future.done()]
            batch = self.choose(self._pending)
            chosen = set(map(id, batch))
            self._pending = [w for w in self._pending if id(w) not in chosen]
        taken.extend(batch)
        if not batch:
            return []
        metrics.observe_batch(len(batch))
        return call_engine(lambda: engine.decode_windows([w.request for w in batch]), self._failed)

    def finished(self, taken: Sequence[W], stats: JobStats) -> None:
        """A job decoded ``taken`` (hook: account for its time)."""

    def _fail(self, taken: list[W], exc: Exception) -> None:
        if not taken and self._bounded:  # refused before the job ran (queue full / timeout): fail what waits
            with self._lock:
                taken, self._pending = self._pending, []
        for waiter in taken:
            if not waiter.future.done():
                waiter.future.set_exception(exc)
