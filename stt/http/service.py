"""What every API face does with an upload: take the model it names (``model``), decode the upload off the loop
(within the audio budget), transcribe it on that model's Transcriber, and account for it in the request's stats."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
from aiohttp import web

from stt.http.audio_budget import AUDIO_BUDGET, memory_hold
from stt.audio import decode_audio, decode_channels, duration_seconds
from stt.diarization import bounds as diarization
from stt.diarization.types import DiarizeOptions
from stt.engines.base import TranscribeOptions, Transcript
from stt.errors import BadRequest
from stt.http.keys import MODELS, SETTINGS
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


_LEASED = web.RequestKey("model", Transcriber)  # the request's Transcriber while ``model()`` holds it


@contextlib.asynccontextmanager
async def model(request: web.Request, name: str | None) -> AsyncIterator[Transcriber]:
    """The per-request hook every face calls: the Transcriber of the configured model ``name`` (None: the
    default), loaded if need be and kept loaded until the block exits. The wait for a load (or for room to load
    it) counts as queued time and is bounded by ``limits.queue_timeout_seconds`` (then 503 with Retry-After).
    A name not configured is UnknownModel (400): a face that answers otherwise maps it before calling this.
    Within the block, ``transcribe`` and ``detect_language`` use this model."""
    started = time.monotonic()
    registry = request.app[MODELS]
    async with registry.lease(name, request.app[SETTINGS].limits.queue_timeout_seconds) as leased:
        _job_stats(request).queued_s += time.monotonic() - started
        request[_LEASED] = leased
        try:
            yield leased
        finally:
            del request[_LEASED]


@contextlib.asynccontextmanager
async def _current(request: web.Request) -> AsyncIterator[Transcriber]:
    """The model the request chose; a face that never chose one gets the default, for this call."""
    leased = request.get(_LEASED)
    if leased is not None:
        yield leased
        return
    async with model(request, None) as default:
        yield default


async def transcribe(request: web.Request, audio: np.ndarray, options: TranscribeOptions,
                     diarize: DiarizeOptions | None = None, chunking: Chunking | None = None) -> Transcript:
    """The request's model does the work; the request's stats (access log, metrics) add up its times. The
    copies of its speech windows in flight (a bounded group at a time) and diarization's working set are
    reserved in the memory budget before any of the work starts."""
    served = request.app[SETTINGS].asr.languages
    if options.languages and served and not set(options.languages) & set(served):
        raise BadRequest(f"language: none of {', '.join(options.languages)} is served here (asr.languages: "
                         f"{', '.join(served)})", param="language")
    labelling = _reserve(request, audio, diarize)
    try:
        async with _current(request) as transcriber:
            return await transcriber.transcribe(audio, options, diarize, _job_stats(request), owner=request,
                                                chunking=chunking)
    finally:
        memory_hold(request).give(labelling)


def stream(request: web.Request, audio: np.ndarray, options: TranscribeOptions, diarize: DiarizeOptions | None,
           chunking: Chunking | None = None) -> AsyncGenerator[WindowText | Transcript, None]:
    """As ``transcribe``: each speech window's text as soon as it is decoded (in order), then the Transcript;
    the windows in flight and diarization's working set reserved the same way (now: a 503 before the answer
    starts)."""
    labelling = _reserve(request, audio, diarize)

    async def windows() -> AsyncGenerator[WindowText | Transcript, None]:
        try:
            async with _current(request) as transcriber:
                async for item in transcriber.stream(audio, options, diarize, _job_stats(request), owner=request,
                                                     chunking=chunking):
                    yield item
        finally:
            memory_hold(request).give(labelling)

    return windows()


def _reserve(request: web.Request, audio: np.ndarray, diarize: DiarizeOptions | None) -> int:
    """Reserve the windows in flight and, with ``diarize``, diarization's working set (OverBudget: 503);
    returns the latter, given back once the speakers are labelled (the windows when the request answers)."""
    hold = memory_hold(request)
    hold.take(window_bytes_in_flight(audio))
    labelling = diarization.working_bytes(audio.shape[-1]) if diarize else 0
    hold.take(labelling)
    return labelling


async def detect_language(request: web.Request, audio: np.ndarray) -> list[tuple[str, float]]:
    async with _current(request) as transcriber:
        return await transcriber.detect_language(audio, _job_stats(request))


def _job_stats(request: web.Request) -> JobStats:
    stats = request_stats(request)
    if stats.job is None:
        stats.job = JobStats()
    return stats.job


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)
