"""What every API face does with an upload: decode it off the loop (within the audio budget), transcribe it on
the app's Transcriber, and account for it in the request's stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import numpy as np
from aiohttp import web

from stt.http.audio_budget import AUDIO_BUDGET, memory_hold
from stt.audio import decode_audio, decode_channels, duration_seconds
from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions, Transcript
from stt.errors import BadRequest
from stt.http.keys import SETTINGS, TRANSCRIBER
from stt.http.stats import request_stats
from stt.inference.chunking import Chunking
from stt.inference.scheduler import JobStats
from stt.inference.transcriber import Transcriber
from stt.inference.uploads import WindowText, window_bytes_in_flight

async def decode(request: web.Request, data: bytes) -> np.ndarray:
    """Decode in a thread: a long MP3 takes long enough to stall every other client."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    budget = request.app[AUDIO_BUDGET]
    async with budget.decoding:  # the decoded audio is reserved in the memory budget before it is allocated
        audio = await _decoded(request, decode_audio, data, limit)
    budget.hold(request, audio.nbytes)  # 503 when requests in flight already hold too much decoded audio
    request_stats(request).audio_s = duration_seconds(audio)
    return audio


async def decode_each_channel(request: web.Request, data: bytes, max_channels: int) -> np.ndarray:
    """(channels, samples): for faces that transcribe every channel on its own."""
    limit = request.app[SETTINGS].limits.max_audio_seconds
    budget = request.app[AUDIO_BUDGET]
    async with budget.decoding:
        audio = await _decoded(request, decode_channels, data, limit, max_channels)
    budget.hold(request, audio.nbytes)
    request_stats(request).audio_s = duration_seconds(audio) * len(audio)
    return audio


async def _decoded(request: web.Request, decoder, *args) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Run a decoder in a thread, its buffers reserved in the request's hold; once it is done, what was reserved
    for buffers it dropped (a buffer that grew) is given back: the hold keeps the decoded audio's array."""
    hold = memory_hold(request)
    before = hold.held
    audio = await asyncio.to_thread(decoder, *args, reserve=hold.take)
    kept = (audio.base if audio.base is not None else audio).nbytes
    hold.give(max(0, hold.held - before - kept))
    return audio


def transcriber(request: web.Request) -> Transcriber:
    return request.app[TRANSCRIBER]


async def transcribe(request: web.Request, audio: np.ndarray, options: TranscribeOptions,
                     diarize: DiarizeOptions | None = None, chunking: Chunking | None = None) -> Transcript:
    """The app's Transcriber does the work; the request's stats (access log, metrics) add up its times. The
    copies of its speech windows in flight (a bounded group at a time) are reserved in the memory budget."""
    served = request.app[SETTINGS].asr.languages
    if options.languages and served and not set(options.languages) & set(served):
        raise BadRequest(f"language: none of {', '.join(options.languages)} is served here (asr.languages: "
                         f"{', '.join(served)})", param="language")
    memory_hold(request).take(window_bytes_in_flight(audio))
    return await transcriber(request).transcribe(audio, options, diarize, _job_stats(request), owner=request,
                                                 chunking=chunking)


def stream(request: web.Request, audio: np.ndarray, options: TranscribeOptions, diarize: DiarizeOptions | None,
           chunking: Chunking | None = None) -> AsyncGenerator[WindowText | Transcript, None]:
    """As ``transcribe``: each speech window's text as soon as it is decoded (in order), then the Transcript;
    the windows in flight reserved in the memory budget the same way."""
    memory_hold(request).take(window_bytes_in_flight(audio))
    return transcriber(request).stream(audio, options, diarize, _job_stats(request), owner=request,
                                       chunking=chunking)


async def detect_language(request: web.Request, audio: np.ndarray) -> list[tuple[str, float]]:
    return await transcriber(request).detect_language(audio, _job_stats(request))


def _job_stats(request: web.Request) -> JobStats:
    stats = request_stats(request)
    if stats.job is None:
        stats.job = JobStats()
    return stats.job


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)
