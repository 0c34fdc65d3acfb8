"""Runs jobs: claims queued ones, transcribes them through the scheduler at its lowest priority, records each
finished chunk of windows so a restarted server resumes where the last one stopped, and ends them with their
callback.

Jobs are transcribed as uploads are (speech found, cut into windows of up to 30 s), at Priority.JOBS: behind
live passes, short and long uploads, never on a reserved slot. ``jobs.concurrency`` jobs run at once and take
turns chunk by chunk (the scheduler serves equal priorities in arrival order). A chunk (``asr.upload_batch_seconds``
of windows, cut from the job's own window list, windows of one batch shape together: ``_chunks``) is one batch of
its own, never mixed with other work, and a resumed job cuts the same chunks (a window decodes the same whatever
its companions, stt/engines/batched_windows.py; the chunks keep a job's work its own all the same). A job resumed
from its recorded chunks ends with the transcript an uninterrupted run gives.

Jobs run on their own copy of the model, whose threads run at a lower OS priority (``jobs.nice`` and
``jobs.sched_idle``; see stt/http/faces/jobs/lifetime.py): a live pass or an upload that runs beside a job's window
gets the cores first. The copy's calls (windows, language detection) take the scheduler's idle lane, slots of
their own: a window that waits for the cores does not hold a slot a live pass needs. The speech search and
diarization run in the calling thread at the usual priority, on the shared slots.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from stt.audio import SAMPLE_RATE, decode_audio, decode_channels
from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowResult
from stt.errors import ApiError
from stt.inference.engine_calls import guarded
from stt.inference.language_choice import LanguageChoice, choose_upload_language
from stt.inference.scheduler import JOBS_LANE, Priority
from stt.inference.transcriber import Transcriber
from stt.inference.speech_windows import (SpeechWindow, assemble, cut_windows, in_language, needs_language,
                                         window_request)
from stt.jobs import results
from stt.jobs.model import COMPLETED, FAILED, Job, woken_or_polled
from stt.jobs.store import AsyncJobStore
from stt.memory_budget import Hold, MemoryBudget
from stt.settings import JobsSettings
from stt.diarization import bounds as diarization
from stt.diarization.types import DiarizeOptions

# The body of a job's callback, in the shape of the face it came from (given by the server: the domain does
# not render). ``transcripts`` is None when the job failed.
CallbackBody = Callable[[Job, "list[Transcript] | None"], bytes]

log = logging.getLogger("stt.jobs")
T = TypeVar("T")
POLL_S = 1.0  # how often the queue is looked at without a wake-up (another replica's job, a lost lease)
PURGE_EVERY_S = 60.0
CHUNKS_IN_FLIGHT = 2  # a job's chunks queued at once: one decoding, the next one waiting its turn
CHANNEL_KEYS = 1_000_000  # recorded windows of channel n are keyed n * CHANNEL_KEYS + window index
SPEECH_KEY = CHANNEL_KEYS - 1  # ... and its speech ranges at n * CHANNEL_KEYS + SPEECH_KEY (never a window index)
# Windows looked ahead for one of the same batch shape (a chunk of two decodes in less time than two chunks of
# one: measured 10-14 % less CPU on four such pairs of the chapter). The progress shown (the run of finished
# windows from the start) lags the decoding by at most this many windows.
LOOKAHEAD = 8


class Lost(Exception):
    """The job is no longer ours: cancelled, or taken over by another replica after our lease ran out."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    def __init__(self, store: AsyncJobStore, transcriber: Transcriber, chunk_s: float, settings: JobsSettings,
                 callback_body: CallbackBody, worker: str | None = None,
                 on_end: Callable[[], None] = lambda: None, memory: MemoryBudget | None = None,
                 load_engine: Callable[[], Engine] | None = None) -> None:
        """``chunk_s``: audio decoded in one batch (asr.upload_batch_seconds), recorded when done; ``on_end``:
        called when a job ended (its callback may be due); ``memory``: the server's one memory budget (a job's
        audio, decoded audio and windows in flight are reserved in it, waiting for room: never refused);
        ``load_engine``: blocking, loads the model that runs jobs (jobs.nice: a copy at a lower OS priority)
        when the first job starts, so a server that is sent no job holds no second model; without it, jobs run
        on the transcriber's. Its calls run under the transcriber's scheduler all the same."""
        self._engine: Engine | None = None if load_engine else transcriber.engine
        self._load_engine = load_engine
        self._loading = asyncio.Lock()
        self.loaded_engine: Engine | None = None  # the copy loaded here (its owner closes it)
        self._callback_body = callback_body
        self._store = store
        self._on_end = on_end
        self._transcriber = transcriber
        self._chunk = int(chunk_s * SAMPLE_RATE)
        self._settings = settings
        self.worker = worker or new_worker_id()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._decoding = asyncio.Semaphore(1)  # one job's audio decoded at a time: it is CPU and memory
        self._memory = memory if memory is not None else MemoryBudget(1 << 62)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._claim_loop(), name="jobs-claim"),
                       asyncio.create_task(self._purge_loop(), name="jobs-purge")]

    def wake(self) -> None:
        self._wake.set()

    def cancel_local(self, job_id: str) -> None:
        """A job cancelled through this server stops at once (on other replicas: at its next lease renewal)."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()

    @property
    def running(self) -> int:
        return len(self._running)

    async def stop(self) -> None:
        """Shutdown: stop claiming, drop the jobs' waiting windows, hand the jobs back to the queue."""
        tasks = [*self._tasks, *self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._store.call("release", self.worker)

    # --- claiming ----------------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while True:
            try:
                while len(self._running) < self._settings.concurrency and self._has_room():
                    job = await self._store.call("claim", self.worker, self._settings.lease_seconds)
                    if job is None:
                        break
                    task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
                    self._running[job.id] = task
                    task.add_done_callback(lambda _, job_id=job.id: self._done(job_id))
            except Exception:  # the database went away for a moment: try again at the next poll
                log.exception("jobs: claiming failed")
            await woken_or_polled(self._wake, POLL_S)

    def _has_room(self) -> bool:
        """A job is claimed only while the memory budget is not full (it stays queued); one claimed when room
        ran out since waits for room before it decodes (``_decode``)."""
        return self._memory.held < self._memory.max_bytes

    def _done(self, job_id: str) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def _purge_loop(self) -> None:
        while True:
            try:
                removed = await self._store.call("purge", self._settings.retention_hours * 3600)
                if removed:
                    log.info("jobs: removed %d job(s) past their retention", removed)
            except Exception:
                log.exception("jobs: purge failed")
            await asyncio.sleep(PURGE_EVERY_S)

    # --- one job ----------------------------------------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job.id, asyncio.current_task()))
        try:
            if job.attempts > self._settings.max_attempts:
                raise _GiveUp(f"The server stopped {job.attempts - 1} times in a row while transcribing this "
                              "job, each time before it got further: given up")
            log.info("job %s: started (attempt %d)", job.id, job.attempts)
            transcripts = await self._transcribe(job)
            await self._finish(job, COMPLETED, transcripts=transcripts)
            log.info("job %s: completed", job.id)
        except asyncio.CancelledError:
            raise  # cancelled by its owner (already recorded) or a shutdown (the job is released)
        except Lost:
            log.info("job %s: no longer ours (cancelled or taken over)", job.id)
        except ApiError as exc:
            await self._finish(job, FAILED, error=exc.message, code=exc.code)
        except _GiveUp as exc:
            await self._finish(job, FAILED, error=str(exc), code="interrupted")
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await self._finish(job, FAILED, error=f"Transcription failed: {type(exc).__name__}",
                               code="internal_error")
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, job_id: str, job_task: asyncio.Task[Any] | None) -> None:
        """Renew the lease while the job waits or runs; cancel it when it is no longer ours."""
        while True:
            await asyncio.sleep(self._settings.lease_seconds / 3)
            try:
                ours = await self._store.call("renew", job_id, self.worker, self._settings.lease_seconds)
            except Exception:
                log.exception("jobs: lease renewal failed")
                continue
            if not ours and job_task is not None:
                job_task.cancel()
                return

    async def _finish(self, job: Job, status: str, *, transcripts: list[Transcript] | None = None,
                      error: str | None = None, code: str | None = None) -> None:
        result = results.transcripts_to_json(transcripts) if transcripts is not None else None
        ended = dataclasses.replace(job, status=status, finished_at=time.time(), error=error, error_code=code)
        body = self._callback_body(ended, transcripts) if job.callback_url else None
        if await self._store.call("finish", job.id, self.worker, status, result, error, code, body):
            self._on_end()
        else:
            log.info("job %s: ended here but no longer ours (cancelled or taken over): not recorded", job.id)

    async def _transcribe(self, job: Job) -> list[Transcript]:
        hold = self._memory.hold()
        try:
            return await self._transcribe_held(job, hold)
        finally:
            hold.close()
            self._wake.set()  # room for a queued job, maybe

    async def _transcribe_held(self, job: Job, hold: Hold) -> list[Transcript]:
        work = job.work
        channels = await self._decode(job, work.max_channels, hold)
        # The windows' copies in flight (CHUNKS_IN_FLIGHT chunks), reserved before they are cut, and diarization's
        # working set, in the same wait (one wait for room per job, not one more before its speakers).
        labelling = diarization.working_bytes(len(channels[0])) if work.diarize is not None else 0
        await hold.reserve(min(sum(c.nbytes for c in channels), CHUNKS_IN_FLIGHT * self._chunk * 4) + labelling)
        total = sum(len(c) for c in channels) / SAMPLE_RATE
        await self._renew(job, done_s=0.0 if not job.done_s else None, total_s=total)
        stored: dict[int, str] = await self._store.call("windows", job.id)
        out = []
        for number, audio in enumerate(channels):
            offset = number * len(channels[0]) / SAMPLE_RATE
            transcript = await self._channel(job, audio, work.options, stored, number, offset)
            if work.diarize is not None:
                transcript = await self._label(transcript, audio, work.diarize)
            out.append(transcript)
        hold.give(labelling)
        return out

    async def _decode(self, job: Job, max_channels: int, hold: Hold) -> list[np.ndarray]:
        """The job's audio decoded, its file's bytes and every decoded buffer reserved in ``hold`` first: over
        the budget the job waits for room (it is never refused nor failed for it)."""
        data = await self._store.call("audio", job.id)
        await hold.reserve(len(data))  # read from the store first: its size is not known before
        limit = self._settings.max_audio_seconds
        async with self._decoding:
            if max_channels:
                audio = await hold.run_reserving(lambda reserve: decode_channels(data, limit, max_channels, reserve))
            else:
                audio = await hold.run_reserving(lambda reserve: decode_audio(data, limit, reserve))
        kept = (audio.base if audio.base is not None else audio).nbytes
        before = hold.held
        del data  # the file's bytes are not needed once decoded
        hold.give(max(0, before - kept))  # they, and the buffers that grew and were dropped
        return list(audio) if max_channels else [audio]

    async def _channel(self, job: Job, audio: np.ndarray, options: TranscribeOptions,
                       stored: dict[int, str], channel: int, offset_s: float) -> Transcript:
        engine = await self._jobs_engine()
        if not options.vad_filter or options.temperature[:1] != (0.0,):
            # The engine's own sequential decoding, one scheduler job: it cannot resume mid-way.
            return await self._run_engine(lambda: engine.transcribe(audio, options))
        base = channel * CHANNEL_KEYS  # record keys of channel n: its windows, then its speech
        # The speech found is recorded with the windows: a resumed job cuts exactly the windows it recorded
        # results for (and does not search again).
        if base + SPEECH_KEY in stored:
            speech = [tuple(r) for r in json.loads(stored[base + SPEECH_KEY])]
        else:
            speech = await self._run_engine(lambda: engine.find_speech(audio))
            layout = json.dumps([[int(start), int(end)] for start, end in speech])
            await self._renew(job, windows=[(base + SPEECH_KEY, layout)])
        windows = cut_windows(speech, len(audio))
        # Detected again on a resumed job: the same audio gives the same language (and the same choice
        # between two close ones, which decodes the first window: kept as its result, if not recorded yet).
        first = windows[0] if windows else None
        choice = (await self._run_engine(lambda: choose_upload_language(engine, audio, speech, options, first),
                                         on_copy=True)
                  if needs_language(engine, options, speech) else LanguageChoice(None))
        options = in_language(options, choice.language)
        done: dict[int, WindowResult] = {i: results.window_from_json(stored[base + i]) for i in range(len(windows))
                                         if base + i in stored}
        if done:
            log.info("job %s: resuming: %d of %d windows were done before", job.id, len(done), len(windows))
        if choice.first is not None and 0 not in done:
            done[0] = choice.first
            await self._renew(job, done_s=offset_s + _done_until(windows, done, len(audio)),
                              windows=[(base, results.window_to_json(choice.first))])
        # Chunks cut from all the windows, then those not done: a resumed job decodes the same batches.
        shape = getattr(engine, "batch_shape", None)
        chunks = [todo for chunk in _chunks(windows, self._chunk,
                                            None if shape is None else lambda n: shape(n, options.beam_size))
                  if (todo := [i for i in chunk if i not in done])]
        pending: set[asyncio.Task[tuple[list[int], list[WindowResult]]]] = set()
        try:
            while chunks or pending:
                while chunks and len(pending) < CHUNKS_IN_FLIGHT:
                    pending.add(asyncio.create_task(self._decode_chunk(job, windows, chunks.pop(0), audio, options)))
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    indices, decoded = task.result()
                    done.update(zip(indices, decoded))
                    await self._renew(job, done_s=offset_s + _done_until(windows, done, len(audio)),
                                      windows=[(base + i, results.window_to_json(r)) for i, r in zip(indices, decoded)])
        finally:
            for task in pending:
                task.cancel()
        return await asyncio.to_thread(assemble, windows, [done[i] for i in range(len(windows))], audio, options,
                                       choice.language)

    async def _decode_chunk(self, job: Job, windows: list[SpeechWindow], indices: list[int], audio: np.ndarray,
                            options: TranscribeOptions) -> tuple[list[int], list[WindowResult]]:
        requests = [window_request(windows[i], audio, options) for i in indices]
        engine = await self._jobs_engine()
        return indices, await self._run_engine(lambda: engine.decode_windows(requests), on_copy=True)

    async def _jobs_engine(self) -> Engine:
        """The model jobs run on; its copy (``load_engine``) is loaded once, by the first job that needs it."""
        if self._engine is None:
            async with self._loading:
                if self._engine is None:
                    assert self._load_engine is not None
                    self.loaded_engine = await asyncio.to_thread(self._load_engine)
                    self._engine = self.loaded_engine
        return self._engine

    async def _renew(self, job: Job, **progress: Any) -> None:
        if not await self._store.call("renew", job.id, self.worker, self._settings.lease_seconds, **progress):
            raise Lost(job.id)

    async def _label(self, transcript: Transcript, audio: np.ndarray, diarize: DiarizeOptions) -> Transcript:
        diarizer = self._transcriber.diarizer  # torch + scikit-learn loaded on first use, in the worker
        return await self._run_engine(lambda: diarizer.get().label(transcript, audio, diarize))

    async def _run_engine(self, job: Callable[[], T], on_copy: bool = False) -> T:
        """``on_copy``: the call's work is done by the model copy's threads (lowered priority): the idle lane."""
        lane = JOBS_LANE if on_copy and self._load_engine is not None else None
        return await self._transcriber.scheduler.run(guarded(job), priority=Priority.JOBS, bounded=False, lane=lane)


class _GiveUp(Exception):
    pass


def _chunks(windows: list[SpeechWindow], budget: int,
            shape: Callable[[int], object] | None = None) -> list[list[int]]:
    """Window indices in chunks of at most ``budget`` samples (at least one window each), in the order of their
    first window. ``shape``: the engine's batch shape of a window of n samples (Engine.batch_shape, where it has
    one): a window goes with the next ones of its shape among the LOOKAHEAD after it, which the engine then
    decodes as one batch (a window decodes the same whatever its companions: batched_windows); a window with
    none goes with the windows right after it, as many as fit, up to one that has a partner of its own."""
    keys = [shape(w.samples) if shape is not None else i for i, w in enumerate(windows)]

    def paired(at: int, left: list[int]) -> bool:  # left[at] has a window of its shape among the next ones
        return shape is not None and any(keys[k] == keys[left[at]] for k in left[at + 1:at + 1 + LOOKAHEAD])

    out: list[list[int]] = []
    left = list(range(len(windows)))
    while left:
        partner = paired(0, left)
        first = left.pop(0)
        chunk, size = [first], windows[first].samples
        if partner:
            for i in [i for i in left[:LOOKAHEAD] if keys[i] == keys[first]]:
                if size + windows[i].samples <= budget:
                    chunk.append(i)
                    size += windows[i].samples
                    left.remove(i)
        else:
            while left and size + windows[left[0]].samples <= budget and not paired(0, left):
                size += windows[left[0]].samples
                chunk.append(left.pop(0))
        out.append(chunk)
    return out


def _done_until(windows: list[SpeechWindow], done: dict[int, Any], length: int) -> float:
    """Seconds of the audio transcribed: up to the end of the last window of the finished run from the start."""
    end = 0
    for i, window in enumerate(windows):
        if i not in done:
            return end / SAMPLE_RATE
        end = window.pieces[-1][1]
    return length / SAMPLE_RATE

