"""Batches the live sessions' decoding passes into shared scheduler jobs, finals first.

Each session has at most one interim and one urgent pass in flight. Passes wait in one of two queues, and a
job takes its passes at the moment it starts on a worker thread, so whatever arrived while it was queued joins it.
Urgent passes (the one that turns an utterance final) have jobs of their own, at Priority.FINAL, on every slot
the scheduler has (two on 2 cores: one live pass does not keep two cores busy, its decoder steps are small),
and beside an interims' job already running: a final never waits behind other streams' interims in the same
batch.
A job's results all come when it ends, and passes of different lengths or prompts are decoded one after the
other inside it (stt/engines/batched_windows.py batches only windows that share their encoder input and prompt
length): so a final's job takes the oldest final and only the finals that batch with it, and each final is out
as soon as its own decoding is, not after every other stream's. Interims are shed when the machine is behind:
their jobs start only while no final waits or decodes (a final gets the cores to itself, not half of them
beside a batch of interims), and take at most INTERIM_JOB_INPUT_S of encoder input, so a final that arrives
during one waits for little. Interims then come less often under load; finals are never skipped.
The scheduler's queue limits and timeouts apply to these jobs exactly as to /stt requests; they are queued
ahead of uploads' jobs.
Interims run on a copy of the model whose threads are in the OS's idle class (``interims_copy``, loaded with the
first interim; stt/engines/lowered.py), on a scheduler lane of their own: a final that starts while an interim
decodes gets the cores at once instead of half of them (the interim's job resumes after it), and a starved interim
never holds a shared slot a final could use. Which copy decodes a pass changes no text: both are the same weights.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from stt.audio import SAMPLE_RATE
from stt.engines.base import Engine, WindowRequest, WindowResult
from stt.inference.scheduler import INTERIMS_LANE, Priority, Scheduler
from stt.inference.window_queue import Waiter, WindowQueue

T = TypeVar("T")
log = logging.getLogger("stt.inference")
Wanted = Callable[[], bool]  # whether a pass not decoded yet is still of use (asked on the event loop)

PAD_S = 5.0  # a pass's encoder input is its audio and this much silence (stt/engines/batched_windows.py)
# Encoder input of one interims' job: a 15 s utterance's pass (20 s of input) and a short one, about a second
# of CPU on 2 cores for base; a final that arrives meanwhile waits for no more.
INTERIM_JOB_INPUT_S = 30.0


def batch_key(request: WindowRequest) -> tuple[int, bool, int]:
    """What passes must share to be decoded as one batch: their length to the second (the encoder input and
    the text budget), whether they have a prompt (the prompts' lengths in tokens must match too, which is not
    known here: prompted passes of one length may still be decoded one after the other) and the beam."""
    return math.ceil(len(request.audio) / SAMPLE_RATE), bool(request.prompt), request.beam_size


@dataclasses.dataclass(eq=False)
class _Pass(Waiter):
    wanted: Wanted | None = None


class _Passes(WindowQueue[_Pass]):
    """One queue of passes (urgent or not), one job at a time."""

    def __init__(self, scheduler: Scheduler, engine: Engine, priority: Priority, max_batch: int,
                 max_input_s: float | None = None, behind: _Passes | None = None, max_jobs: int = 1) -> None:
        """``max_input_s``: encoder input per job (None: the oldest pass and those that batch with it);
        ``behind``: no job of this queue starts while that queue has work."""
        super().__init__(scheduler, engine, priority, max_jobs=max_jobs, failed="Live decoding failed")
        self._max_batch = max_batch
        self._max_input = None if max_input_s is None else int(max_input_s * SAMPLE_RATE)
        self._behind = behind
        self._idle = asyncio.Event()  # set (and replaced) whenever this queue's runner stops

    def choose(self, pending: Sequence[_Pass]) -> list[_Pass]:
        if not pending or (self._behind is not None and self._behind.busy()):
            return []  # a final came while this job waited for its slot: it goes first (see ready)
        if self._max_input is None:
            key = batch_key(pending[0].request)
            return [w for w in pending if batch_key(w.request) == key][:self._max_batch]
        batch: list[_Pass] = []
        budget = self._max_input
        for waiter in pending[:self._max_batch]:
            samples = len(waiter.request.audio) + int(PAD_S * SAMPLE_RATE)
            if batch and samples > budget:
                break
            batch.append(waiter)
            budget -= samples
        return batch

    async def ready(self) -> None:
        while self._behind is not None and self._behind.busy():
            await self._behind._idle.wait()
        self._drop_unwanted()

    def _drop_unwanted(self) -> None:
        """Passes whose session no longer needs them (an interim of an utterance made final while it waited)
        are answered None without decoding: work shed, not queued behind."""
        with self._lock:
            dropped = [w for w in self._pending if w.wanted is not None and not w.wanted()]
            self._pending = [w for w in self._pending if w not in dropped]
        for waiter in dropped:
            if not waiter.future.done():
                waiter.future.set_result(None)  # type: ignore[arg-type]  # decode() answers None

    def ended(self) -> None:
        idle, self._idle = self._idle, asyncio.Event()
        idle.set()


class PassBatcher:
    def __init__(self, scheduler: Scheduler, engine: Engine, max_batch: int = 8, final_jobs: int = 1,
                 interims_copy: Callable[[], Engine] | None = None) -> None:
        """``final_jobs``: finals' jobs that may run at once (the scheduler's slots bound them too);
        ``interims_copy``: blocking, loads the lowered-priority copy interims run on (None: they share ``engine``)."""
        self._scheduler = scheduler
        urgent = _Passes(scheduler, engine, Priority.FINAL, max_batch, max_jobs=final_jobs)
        interims = _Passes(scheduler, engine, Priority.LIVE, max_batch, INTERIM_JOB_INPUT_S, behind=urgent)
        self._queues = {True: urgent, False: interims}
        self._load_copy = interims_copy
        self._loading: asyncio.Task[None] | None = None
        self._closed = False
        self.copy: Engine | None = None  # the copy loaded here (closed by ``close``)

    def _start_copy(self) -> None:
        """The copy is loaded by the first interim (a server that streams nothing holds no second model); the
        interims decode on the shared model until it is ready."""
        if self._load_copy is not None and self._loading is None:
            self._loading = asyncio.create_task(self._copy_in(self._load_copy))

    async def _copy_in(self, load: Callable[[], Engine]) -> None:
        try:
            copy = await asyncio.to_thread(load)
        except Exception:  # the interims stay on the shared model: slower finals, nothing lost
            log.exception("live interims: their copy of the model could not be loaded")
            return
        if self._closed:  # closed while it loaded
            await asyncio.to_thread(copy.close)
            return
        self.copy = copy
        self._scheduler.add_lane(INTERIMS_LANE, 1)
        self._queues[False].move_to(copy, INTERIMS_LANE)

    def close(self) -> None:
        """Blocking, after the scheduler is closed (nothing runs on the copy any more)."""
        self._closed = True
        if self.copy is not None:
            self.copy.close()
            self.copy = None

    async def detect(self, job: Callable[[], T]) -> T:
        """A live stream's speech detection, under the scheduler's budget (Scheduler.detect)."""
        return await self._scheduler.detect(job)

    async def decode(self, request: WindowRequest, urgent: bool = False,
                     wanted: Wanted | None = None) -> WindowResult | None:
        """The pass's result; None when ``wanted`` said, before its job, that it was of no use any more."""
        if not urgent:
            self._start_copy()
        waiter = _Pass(request, asyncio.get_running_loop().create_future(), wanted)
        self._queues[urgent].add([waiter])
        return await waiter.future
