"""What every API face does with an upload: decode it off the loop, queue it, transcribe it, account for it."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from aiohttp import web

from stt.audio import decode_audio, decode_channels, duration_seconds
from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions, Transcript
from stt.errors import ApiError, EngineError
from stt.keys import ENGINE, SCHEDULER, SETTINGS
from stt.scheduler import JobStats
from stt.stats import request_stats

log = logging.getLogger("stt.service")


async def decode(request: web.Request, data: bytes) -> np.ndarray:
    """Decode in a thread: a long MP3 takes long enough to stall every other client."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    audio = await asyncio.to_thread(decode_audio, data, limit)
    request_stats(request).audio_s = duration_seconds(audio)
    return audio


async def decode_each_channel(request: web.Request, data: bytes, max_channels: int) -> np.ndarray:
    """(channels, samples): for faces that transcribe every channel on its own."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    audio = await asyncio.to_thread(decode_channels, data, limit, max_channels)
    request_stats(request).audio_s = duration_seconds(audio) * len(audio)
    return audio


async def transcribe(request: web.Request, audio: np.ndarray, options: TranscribeOptions,
                     diarize: DiarizeOptions | None = None) -> Transcript:
    engine = request.app[ENGINE]

    def job() -> Transcript:
        transcript = engine.transcribe(audio, options)
        if not diarize:
            return transcript
        from stt.diarization.diarizer import shared_diarizer  # torch + scikit-learn, only once it is asked for

        # Speaker embeddings run in the same worker slot as the transcription: one budget for all inference.
        return shared_diarizer().label(transcript, audio, diarize)

    return await _run(request, job)


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
