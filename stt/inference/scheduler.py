"""The only place inference runs: worker threads behind a bounded priority queue, off the event loop.

A job first waits for one of ``workers + reserved`` slots (bounded by ``max_queue`` waiters and a timeout),
then runs in a thread. Waiters are served by priority, then in arrival order: a live pass that makes an
utterance final, then other live passes, then an upload's search for speech, short uploads, long uploads'
windows, and asynchronous jobs' windows last (uploads are decoded a few windows per job, each job queued anew,
so two uploads take turns). Long uploads' and asynchronous jobs' jobs hold at most ``workers`` slots: the
``reserved`` ones (an engine replica of their own) stay free for everything else, so a live final or an 11 s
clip never waits for a long upload's job, which cannot be interrupted. On 2 cores, a second CTranslate2
replica decoding a live pass beside a 30 s beam-5 window slowed neither (measured: the pass took 0.19-0.32 s,
as alone): one call does not keep two cores busy.
Asynchronous jobs that run on their own copy of the model, whose threads are in the OS's idle class (see
stt/http/faces/jobs/lifetime.py), decode on a lane of their own instead (``add_lane``): slots of their own, as many
as the copy has replicas. Such a call takes a core only when nothing else wants one, so for as long as live
passes or uploads keep the cores busy it makes no progress: on a shared slot it would hold that slot for as long,
and a live stream would be left one slot for its interim and its final passes (the final waited for the interim:
a live final 1 s later while jobs ran). The lane's calls are bounded by its slots, and take only what the
shared slots leave of the CPU.
A waiter that is cancelled (its client went away) leaves the queue and its job never runs. A running job
cannot be interrupted, so its slot is released only when the thread really finishes: otherwise cancelled
requests would let more jobs than cores run at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from stt.errors import Overloaded

T = TypeVar("T")


DETECTION_THREADS = 4
JOBS_LANE = "jobs"  # asynchronous jobs on their idle-class copy of the model (stt/http/faces/jobs/lifetime.py)
INTERIMS_LANE = "interims"  # live interim passes on theirs (stt/inference/pass_batcher.py)


class Priority(enum.IntEnum):
    FINAL = 0  # a live pass an utterance's final waits on
    LIVE = 1  # other live passes
    SPEECH = 2  # an upload's search for its speech: short, and its windows then join the next batch
    SHORT = 3  # windows of an upload that fits in one job: a new clip is not queued behind a long file
    BATCH = 4  # long uploads' windows, language detection, anything else: never on a reserved slot
    JOBS = 5  # asynchronous jobs (stt/jobs): behind everything a client waits on; never on a reserved slot


@dataclasses.dataclass
class JobStats:
    queued_s: float = 0.0  # seconds waiting for a worker
    engine_s: float = 0.0  # seconds in the engine


class Scheduler:
    def __init__(self, workers: int, max_queue: int, queue_timeout: float, reserved: int = 0) -> None:
        """``reserved``: slots long uploads' (Priority.BATCH) and asynchronous jobs' (Priority.JOBS) jobs never
        take; the engine must be able to run ``workers + reserved`` calls at once (Engine.parallel_calls)."""
        self._workers = workers
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._free = workers + reserved  # slots nobody holds
        self._batch_free = workers  # of those, how many a Priority.BATCH job may still take
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []  # (priority, arrival, woken with a slot)
        self._arrivals = itertools.count()
        self._waiting = 0
        self._running = 0
        self._executor = ThreadPoolExecutor(max_workers=workers + reserved, thread_name_prefix="stt-engine")
        # Live speech detection: a few ms of Silero per 100 ms of audio per stream, needed at once (an
        # utterance's end is only seen after it). Queued behind a decoding job it would wait for it; in the
        # default pool it would be unbounded. A few threads of its own, part of this budget: one thread
        # serialised every stream's detection and fell behind on a loaded machine.
        self._detection = ThreadPoolExecutor(max_workers=DETECTION_THREADS, thread_name_prefix="stt-detect")
        self._ewma_job_s = 5.0  # recent job length, for a useful Retry-After
        self._lanes: dict[str, tuple[asyncio.Semaphore, ThreadPoolExecutor]] = {}

    def add_lane(self, name: str, slots: int) -> None:
        """Slots of their own for calls on a model copy whose threads run in the OS's idle class (``run`` with
        ``lane=name``): the copy's replicas. Asynchronous jobs have one (``JOBS_LANE``), live interim passes
        another (``INTERIMS_LANE``): each is bounded by its own slots and never holds a shared one."""
        self._lanes[name] = (asyncio.Semaphore(slots), ThreadPoolExecutor(max_workers=slots,
                                                                          thread_name_prefix=f"stt-engine-{name}"))

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def retry_after(self) -> int:
        """Seconds a refused client should wait: roughly the time to drain what is queued now."""
        return max(1, math.ceil(self._ewma_job_s * (self._waiting + self._running) / self._workers))

    async def run(self, job: Callable[[], T], stats: JobStats | None = None,
                  priority: Priority = Priority.BATCH, bounded: bool = True, lane: str | None = None) -> T:
        """``bounded=False``: work accepted earlier (an admitted upload's windows) waits without the queue
        limit or the queue timeout; it still counts as waiting. ``lane``: a call on an idle-class model copy, on
        that lane's slots (``add_lane``; without one, on the shared slots)."""
        stats = stats if stats is not None else JobStats()
        if lane is not None and lane in self._lanes:
            return await self._run_on_lane(job, stats, *self._lanes[lane])
        queued_at = time.monotonic()
        await self._acquire(priority, bounded)
        stats.queued_s = time.monotonic() - queued_at
        return await self._execute(job, stats, self._executor, lambda: self._release(priority, stats.engine_s))

    async def _run_on_lane(self, job: Callable[[], T], stats: JobStats, slots: asyncio.Semaphore,
                           executor: ThreadPoolExecutor) -> T:
        queued_at = time.monotonic()
        self._waiting += 1
        try:
            await slots.acquire()
        finally:
            self._waiting -= 1
        stats.queued_s = time.monotonic() - queued_at
        return await self._execute(job, stats, executor, slots.release)

    async def detect(self, job: Callable[[], T]) -> T:
        """Short model work a live stream needs now (speech detection), on DETECTION_THREADS threads."""
        return await asyncio.wrap_future(self._detection.submit(job))

    def _may_take(self, priority: int) -> bool:
        return self._free > 0 and (priority < Priority.BATCH or self._batch_free > 0)

    def _take(self, priority: int) -> None:
        self._free -= 1
        self._batch_free -= priority >= Priority.BATCH

    def _put_back(self, priority: int) -> None:
        self._free += 1
        self._batch_free += priority >= Priority.BATCH

    async def _acquire(self, priority: Priority, bounded: bool) -> None:
        # Whoever waits could not take a slot when it last changed hands (see _hand_over): a job that may
        # take one now goes ahead of them, as it would have been woken first.
        if self._may_take(priority):
            self._take(priority)
            return
        if bounded and self._waiting >= self._max_queue:
            raise Overloaded("Server is busy: the transcription queue is full, retry later",
                             retry_after_s=self.retry_after())
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((int(priority), next(self._arrivals), woken))
        self._waiting += 1
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that lands just after the
            # slot was handed over, and the job of a client that had gone would run after all.
            async with asyncio.timeout(self._queue_timeout if bounded else None):
                await woken
        except TimeoutError:
            self._give_back(woken, priority)
            raise Overloaded(f"Server is busy: waited {self._queue_timeout:g} s for a free worker",
                             retry_after_s=self.retry_after()) from None
        except BaseException:
            self._give_back(woken, priority)
            raise
        finally:
            self._waiting -= 1

    def _give_back(self, woken: asyncio.Future[None], priority: int) -> None:
        """A waiter that leaves: a slot handed to it just before it left goes to the next one."""
        if woken.done() and not woken.cancelled():
            self._put_back(priority)
            self._hand_over()
        else:
            woken.cancel()  # still queued: dropped at the next hand-over

    def _hand_over(self) -> None:
        """Free slots to the most urgent waiters that may take them (a long upload's job may not take a
        reserved slot: it stays queued while a live pass behind it goes ahead)."""
        for entry in sorted(self._queue, key=lambda e: e[:2]):  # a few dozen waiters at most
            if not self._free:
                break
            priority, _, woken = entry
            if not woken.done() and self._may_take(priority):
                self._take(priority)
                woken.set_result(None)
        self._queue = [entry for entry in self._queue if not entry[2].done()]

    async def _execute(self, job: Callable[[], T], stats: JobStats, executor: ThreadPoolExecutor,
                       release: Callable[[], None]) -> T:
        """``job`` in ``executor``; ``release`` gives its slot back, on the loop, once the thread finished."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self._running += 1

        def finished(_: Future[T]) -> None:
            if not loop.is_closed():  # at exit the loop may already be gone; nothing waits then
                loop.call_soon_threadsafe(self._finished, started, stats, release)

        future = executor.submit(job)
        future.add_done_callback(finished)
        # shield: a cancelled request must not cancel the wrapper and release the slot early.
        return await asyncio.shield(asyncio.wrap_future(future))

    def _finished(self, started: float, stats: JobStats, release: Callable[[], None]) -> None:
        stats.engine_s = time.monotonic() - started
        self._running -= 1
        release()

    def _release(self, priority: int, engine_s: float) -> None:
        """A shared slot given back: it goes to the most urgent waiter that may take it."""
        self._ewma_job_s = 0.8 * self._ewma_job_s + 0.2 * engine_s
        self._put_back(priority)
        self._hand_over()

    async def drain(self, timeout: float) -> bool:
        """Wait until no job is queued or running; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._waiting or self._running:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def close(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
        self._detection.shutdown(wait=wait, cancel_futures=True)
        for _, executor in self._lanes.values():
            executor.shutdown(wait=wait, cancel_futures=True)
