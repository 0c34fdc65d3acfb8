"""What every API face does with an upload: decode it off the loop, queue it, transcribe it, account for it."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from aiohttp import web

from stt.http.audio_budget import AUDIO_BUDGET
from stt.audio import decode_audio, decode_channels, duration_seconds
from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions, Transcript
from stt.errors import ApiError, BadRequest, EngineError
from stt.inference.uploads import transcribe_windows
from stt.http.keys import ENGINE, SCHEDULER, SETTINGS, WINDOW_BATCHER
from stt.inference.scheduler import JobStats, Priority
from stt.http.stats import request_stats

log = logging.getLogger("stt.http.service")


async def decode(request: web.Request, data: bytes) -> np.ndarray:
    """Decode in a thread: a long MP3 takes long enough to stall every other client."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    budget = request.app[AUDIO_BUDGET]
    async with budget.decoding:
        audio = await asyncio.to_thread(decode_audio, data, limit)
    budget.hold(request, audio.nbytes)  # 503 when requests in flight already hold too much decoded audio
    request_stats(request).audio_s = duration_seconds(audio)
    return audio


async def decode_each_channel(request: web.Request, data: bytes, max_channels: int) -> np.ndarray:
    """(channels, samples): for faces that transcribe every channel on its own."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    budget = request.app[AUDIO_BUDGET]
    async with budget.decoding:
        audio = await asyncio.to_thread(decode_channels, data, limit, max_channels)
    budget.hold(request, audio.nbytes)
    request_stats(request).audio_s = duration_seconds(audio) * len(audio)
    return audio


async def transcribe(request: web.Request, audio: np.ndarray, options: TranscribeOptions,
                     diarize: DiarizeOptions | None = None) -> Transcript:
    """Speech windows decoded in batches (the default); ``vad_filter=false``, or a temperature above 0 asked
    for (windows are decoded at 0 only): the engine's own sequential decoding of the whole audio in one job.
    Speakers, when asked for, are labelled in one more job under the same worker budget."""
    engine = request.app[ENGINE]
    server_languages = request.app[SETTINGS].asr.languages
    if options.languages and server_languages and not set(options.languages) & set(server_languages):
        raise BadRequest(f"language: none of {', '.join(options.languages)} is served here (asr.languages: "
                         f"{', '.join(server_languages)})", param="language")
    if not options.vad_filter or options.temperature[:1] != (0.0,):
        transcript = await _run(request, lambda: engine.transcribe(audio, options))
    else:
        stats = JobStats()
        batcher = request.app[WINDOW_BATCHER]
        try:
            transcript = await transcribe_windows(
                engine, audio, options, lambda job: _timed(request, job, stats),
                lambda windows: batcher.decode(windows, owner=request, stats=stats))
        finally:
            request_stats(request).job = stats
    if not diarize:
        return transcript
    return await _run(request, lambda: _label(transcript, audio, diarize))


def _label(transcript: Transcript, audio: np.ndarray, diarize: DiarizeOptions) -> Transcript:
    from stt.diarization.diarizer import shared_diarizer  # torch + scikit-learn, only once it is asked for

    # Speaker embeddings run under the same worker budget as the transcription: one budget for all inference.
    return shared_diarizer().label(transcript, audio, diarize)


async def _timed(request: web.Request, job, total: JobStats):  # type: ignore[no-untyped-def]
    """An upload's search for speech; its queue and engine times add up into the request's."""
    stats = JobStats()
    try:
        return await request.app[SCHEDULER].run(_guarded(job), stats, Priority.SPEECH)
    finally:
        total.queued_s += stats.queued_s
        total.engine_s += stats.engine_s


async def detect_language(request: web.Request, audio: np.ndarray) -> list[tuple[str, float]]:
    engine = request.app[ENGINE]
    return await _run(request, lambda: engine.detect_language(audio))


async def _run(request: web.Request, job):  # type: ignore[no-untyped-def]
    stats = JobStats()
    try:
        return await request.app[SCHEDULER].run(_guarded(job), stats)
    finally:
        request_stats(request).job = stats


def _guarded(job):  # type: ignore[no-untyped-def]
    """Engine exceptions become a 500 with a safe message; the worker thread and the model stay usable."""

    def run():  # type: ignore[no-untyped-def]
        try:
            return job()
        except ApiError:
            raise
        except Exception as exc:
            log.exception("engine failed")
            raise EngineError(f"Transcription failed: {type(exc).__name__}") from exc

    return run


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)
