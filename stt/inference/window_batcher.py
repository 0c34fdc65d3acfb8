"""Uploads' windows from every client batched into shared scheduler jobs, the uploads taking turns.

Each upload hands all its speech windows over at once, to one of two queues:
- short uploads (all their speech fits in one job) run at Priority.SHORT, which may take the scheduler's
  reserved slot: an 11 s clip sent after a 4-hour file does not wait for the file's job in progress;
- long uploads run at Priority.BATCH, on the ``workers`` slots only, in bigger jobs (batching pays most on
  long files, and nothing urgent waits behind them: live passes and short clips have the reserved slot).
A job takes waiting windows one upload at a time in rotation (the upload after the one served last goes
first) up to its budget of encoder input (a window's audio and the silence after it), so four short clips
sent together decode as one batch and two long files take turns. Windows whose client left are dropped when a
job takes its windows; a job that already runs finishes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from stt.audio import SAMPLE_RATE
from stt.engines.base import Engine, WindowRequest, WindowResult
from stt.inference.speech_windows import MAX_WINDOW
from stt.inference.scheduler import JobStats, Priority, Scheduler
from stt.inference.window_queue import Waiter, WindowQueue

# Audio decoded per job. Short clips: one full window, or several short ones batched. Long uploads: by
# default (asr.upload_batch_seconds) two windows; they share one beam search only when their encoder inputs,
# text budgets and prompts match (batched_windows._groups): then ~10 % less CPU than one by one, ~85 MB more
# peak (2 CPU threads, base, beam 5, two 29.5 s windows); a longer job delays other long uploads' turns.
SHORT_JOB_AUDIO_S = 30.0
LONG_JOB_AUDIO_S = 60.0
# A job's windows are counted by their encoder input (a full 30 s for uploads' windows, WindowRequest.full_window):
# what bounds its memory (each 30 s window holds ~185 MB at beam 5, the decoder's cross-attention per beam).
# A window on a shortened input counts its audio plus PAD_S. Short clips' jobs take up to 60 s of input (two full
# windows' worth), so four short clips sent together still share one batch.
SHORT_JOB_INPUT_S = 60.0
PAD = int(5.0 * SAMPLE_RATE)  # the silence after a window's audio on a shortened input (batched_windows.PAD_S)


@dataclasses.dataclass(eq=False)
class _Waiting(Waiter):
    owner: object = None  # the upload it belongs to
    stats: JobStats = dataclasses.field(default_factory=JobStats)


class WindowBatcher:
    def __init__(self, scheduler: Scheduler, engine: Engine, *, long_jobs: int = 1, short_jobs: int = 1,
                 short_job_audio_s: float = SHORT_JOB_AUDIO_S,
                 long_job_audio_s: float = LONG_JOB_AUDIO_S) -> None:
        """``long_jobs`` / ``short_jobs``: jobs of each queue that may run at once (the scheduler's slots
        bound them too)."""
        self._short = _Queue(scheduler, engine, Priority.SHORT, short_jobs, short_job_audio_s,
                             max(short_job_audio_s, SHORT_JOB_INPUT_S))
        self._long = _Queue(scheduler, engine, Priority.BATCH, long_jobs, long_job_audio_s, long_job_audio_s)

    async def decode(self, requests: Sequence[WindowRequest], owner: object,
                     stats: JobStats | None = None, upload_samples: int | None = None) -> list[WindowResult]:
        """Results in order. Cancelling the caller drops its windows that no job has taken yet.
        ``upload_samples``: all the upload's speech when it hands its windows over a group at a time (the
        queue is chosen by the upload, not by the group)."""
        futures = self.submit(requests, owner, stats, upload_samples)
        try:
            return list(await asyncio.gather(*futures))
        finally:
            for future in futures:
                future.cancel()  # no-op when done; otherwise the window is dropped when a job would take it

    def submit(self, requests: Sequence[WindowRequest], owner: object, stats: JobStats | None = None,
               upload_samples: int | None = None, alone: bool = False) -> list[asyncio.Future[WindowResult]]:
        """The windows join their queue; their results to come, in order (cancel one to drop its window).
        ``alone``: to the short clips' queue whatever the upload's size (a streamed upload's first window)."""
        samples = upload_samples if upload_samples is not None else sum(len(r.audio) for r in requests)
        queue = self._short if alone or samples <= self._short.budget else self._long
        return queue.submit(requests, owner, stats if stats is not None else JobStats())


class _Queue(WindowQueue[_Waiting]):
    def __init__(self, scheduler: Scheduler, engine: Engine, priority: Priority, max_jobs: int,
                 job_audio_s: float, job_input_s: float) -> None:
        """``job_audio_s``: the most speech of an upload sent to this queue; ``job_input_s``: the most encoder
        input of the windows of one job."""
        # Accepted work: no queue limit or timeout here; uploads were admitted (and could be refused) when their
        # speech was searched for.
        super().__init__(scheduler, engine, priority, max_jobs=max_jobs, bounded=False)
        self.budget = int(job_audio_s * SAMPLE_RATE)
        self._job_input = int(job_input_s * SAMPLE_RATE)
        self._last_owner: object | None = None

    def submit(self, requests: Sequence[WindowRequest], owner: object,
               stats: JobStats) -> list[asyncio.Future[WindowResult]]:
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(r, loop.create_future(), owner, stats) for r in requests]
        self.add(waiting)
        return [w.future for w in waiting]

    def choose(self, pending: Sequence[_Waiting]) -> list[_Waiting]:
        """The next batch: one window per upload in turn, until the encoder-input budget (at least one window)."""
        queues: dict[int, list[_Waiting]] = {}
        owners: list[object] = []
        for w in pending:
            if id(w.owner) not in queues:
                owners.append(w.owner)
            queues.setdefault(id(w.owner), []).append(w)
        if self._last_owner is not None and any(o is self._last_owner for o in owners):
            at = next(i for i, o in enumerate(owners) if o is self._last_owner) + 1
            owners = owners[at:] + owners[:at]
        batch: list[_Waiting] = []
        budget = self._job_input
        while any(queues[id(o)] for o in owners):
            for owner in owners:
                queue = queues[id(owner)]
                if not queue:
                    continue
                samples = _input(queue[0].request)
                if batch and samples > budget:
                    return batch
                batch.append(queue.pop(0))
                budget -= samples
                self._last_owner = owner
        return batch

    def finished(self, taken: Sequence[_Waiting], stats: JobStats) -> None:
        """Each upload's stats: the job's time counted once per upload that had windows in it."""
        for owner_stats in {id(w.stats): w.stats for w in taken}.values():
            owner_stats.queued_s += stats.queued_s
            owner_stats.engine_s += stats.engine_s


def _input(request: WindowRequest) -> int:
    """The samples a window's encoder input holds: a full 30 s window, or its audio and the pad after it."""
    return MAX_WINDOW if request.full_window else min(MAX_WINDOW, len(request.audio) + PAD)
