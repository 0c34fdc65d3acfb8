"""One model's inference: its engine, the scheduler whose workers bound every call to it, the window queues
that batch uploads' windows and live passes, and its diarizer (loaded on first use).

Faces reach inference only through a Transcriber: it is created in one ``cleanup_ctx`` (stt/http/app.py) and
closed there. Everything here is per model, so several models are several Transcribers (a registry keyed by
model name is the next step).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TypeVar

import numpy as np

from stt.diarization.lazy import LazyDiarizer
from stt.diarization.live import LiveSpeakers
from stt.diarization.types import DiarizeOptions
from stt.engines.base import Engine, TranscribeOptions, Transcript
from stt.inference.chunking import Chunking
from stt.inference.engine_calls import guarded
from stt.inference.pass_batcher import PassBatcher
from stt.inference.scheduler import JobStats, Priority, Scheduler
from stt.inference.uploads import WindowText, stream_windows, transcribe_windows
from stt.inference.window_batcher import WindowBatcher

log = logging.getLogger("stt.inference")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Budget:
    """The worker budget of one model (from ``asr`` and ``limits`` of the config)."""

    workers: int
    reserved_workers: int
    max_queue: int
    queue_timeout_s: float
    upload_batch_s: float


class Transcriber:
    def __init__(self, engine: Engine, budget: Budget, interims_copy: Callable[[], Engine] | None = None) -> None:
        """``interims_copy``: blocking, loads the lowered-priority copy of ``engine`` live interims run on
        (stt/inference/pass_batcher.py); None: they run on ``engine``."""
        # An engine that runs fewer calls at once than configured gets no more than it can take.
        workers = min(budget.workers, engine.parallel_calls)
        reserved = min(budget.reserved_workers, engine.parallel_calls - workers)
        self.engine = engine
        self.workers = workers
        self.scheduler = Scheduler(workers, budget.max_queue, budget.queue_timeout_s, reserved)
        self.windows = WindowBatcher(self.scheduler, engine, long_jobs=workers, long_job_audio_s=budget.upload_batch_s)
        self.passes = PassBatcher(self.scheduler, engine, final_jobs=workers + reserved, interims_copy=interims_copy)
        self.diarizer = LazyDiarizer()

    async def transcribe(self, audio: np.ndarray, options: TranscribeOptions, diarize: DiarizeOptions | None,
                         stats: JobStats, owner: object, chunking: Chunking | None = None) -> Transcript:
        """Speech windows decoded in batches (the default); ``vad_filter=false``, or a temperature above 0 asked
        for (windows are decoded at 0 only): the engine's own sequential decoding of the whole audio in one job.
        Speakers, when asked for, are labelled in one more job under the same worker budget. ``stats`` adds up
        the time queued and in the engine; ``owner``: whose windows they are (uploads take turns);
        ``chunking``: the client's say in where windows are cut (OpenAI's server_vad)."""
        if self._whole(options):
            transcript = await self.run(lambda: self.engine.transcribe(audio, options), stats)
        else:
            transcript = await transcribe_windows(
                self.engine, audio, options, lambda job: self.run(job, stats, Priority.SPEECH),
                lambda windows, speech: self.windows.decode(windows, owner=owner, stats=stats,
                                                            upload_samples=speech), chunking)
        return await self._speakers(transcript, audio, diarize, stats)

    async def stream(self, audio: np.ndarray, options: TranscribeOptions, diarize: DiarizeOptions | None,
                     stats: JobStats, owner: object,
                     chunking: Chunking | None = None) -> AsyncGenerator[WindowText | Transcript, None]:
        """As ``transcribe``, with each speech window's text as soon as it and those before it are decoded,
        then the whole Transcript (the same ``transcribe`` answers; with speakers when asked for). The engine's
        sequential decoding has no windows: its Transcript alone."""
        if self._whole(options):
            yield await self.transcribe(audio, options, diarize, stats, owner)
            return
        transcript: Transcript | None = None
        events = stream_windows(
            self.engine, audio, options, lambda job: self.run(job, stats, Priority.SPEECH),
            lambda windows, speech, alone: self.windows.submit(windows, owner=owner, stats=stats,
                                                               upload_samples=speech, alone=alone), chunking)
        async with aclosing(events):  # a client that leaves drops the windows not decoded yet, at once
            async for event in events:
                if isinstance(event, Transcript):
                    transcript = event
                else:
                    yield event
        assert transcript is not None  # stream_windows always ends with it
        yield await self._speakers(transcript, audio, diarize, stats)

    @staticmethod
    def _whole(options: TranscribeOptions) -> bool:
        return not options.vad_filter or options.temperature[:1] != (0.0,)

    async def _speakers(self, transcript: Transcript, audio: np.ndarray, diarize: DiarizeOptions | None,
                        stats: JobStats) -> Transcript:
        if not diarize:
            return transcript
        # Speaker embeddings run under the same worker budget as the transcription: one budget for all inference.
        return await self.run(lambda: self.diarizer.get().label(transcript, audio, diarize), stats)

    async def detect_language(self, audio: np.ndarray, stats: JobStats) -> list[tuple[str, float]]:
        return await self.run(lambda: self.engine.detect_language(audio), stats)

    async def run(self, job: Callable[[], T], total: JobStats, priority: Priority = Priority.BATCH) -> T:
        """One blocking engine job under the scheduler; its queue and engine times add up into ``total``."""
        stats = JobStats()
        try:
            return await self.scheduler.run(guarded(job), stats, priority)
        finally:
            total.queued_s += stats.queued_s
            total.engine_s += stats.engine_s

    def live_speakers(self) -> LiveSpeakers:
        """A live lane's speaker labelling, with this model's scheduler and diarizer."""
        return LiveSpeakers(self.scheduler, self.diarizer.get)

    async def drain(self, timeout_s: float) -> bool:
        """Finish what was accepted (graceful shutdown); False when work still runs after ``timeout_s``."""
        return await self.scheduler.drain(timeout_s)

    def close(self, wait: bool = True) -> None:
        self.scheduler.close(wait=wait)
        self.passes.close()
        self.diarizer.close()
