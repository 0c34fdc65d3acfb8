"""An upload decoded as speech windows: find the speech, cut it into windows, decode them with other work.

Finding the speech is one scheduler job (the upload's admission: a full queue or a queue timeout refuses it
there, as before). Silence is never decoded: an upload of silence costs one VAD pass and answers "". When no
language is given, a second job detects it once for the whole upload, as the engine does (``upload_language``),
except where the first window finds it itself on the encoding its decoding needs anyway (over 15 s of speech:
an upload of one such window, and a streamed upload's first window). When the detection is unsure between two
languages, that job also decodes the first window in both and keeps the likelier reading (``language_choice``):
the first window is then decoded already. The windows then go to the shared WindowBatcher, batched with other
uploads' windows, the uploads taking turns.

A window's audio is a copy of its speech pieces (a view when it is one piece): they are handed over a group of
``GROUP_S`` at a time, at most ``GROUPS_IN_FLIGHT`` groups at once, so the copies never grow with the upload
(all of a 4 h upload's windows at once were a second copy of its speech). Each window is decoded on its own,
so the grouping changes nothing in the transcript.

``stream_windows`` gives each window's text as soon as it and the windows before it are decoded (OpenAI's
``stream=true``), then the whole transcript, the same as ``transcribe_windows`` answers. Its first hop is kept
short: the speech is searched only until the first window is known for good (``SpeechSearch``: a minute of a
long upload, not all of it), the language is detected (it needs the first speech only), and the first window
goes alone, to the short clips' queue; the rest of the search and the other windows only once it is decoded:
the first text comes as soon as a short clip's would, not slowed by the upload's own next job on the same cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from stt.engines.base import Engine, Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult
from stt.audio import SAMPLE_RATE
from stt.inference.chunking import Chunking
from stt.inference.language_choice import choose_upload_language
from stt.inference.speech_windows import (Language, SpeechSearch, SpeechWindow, assemble, cut_windows,
                                         in_language, needs_language, window_detects, window_request,
                                         window_segments)

T = TypeVar("T")


class RunJob(Protocol):
    """Runs a blocking job (the speech search, the language detection) under the scheduler."""

    def __call__(self, job: Callable[[], T], /) -> Awaitable[T]: ...



Decode = Callable[[Sequence[WindowRequest], int], Awaitable[list[WindowResult]]]  # windows, the upload's speech
# Windows, the upload's speech, alone (to the short clips' queue) -> each window's result to come, in order.
Submit = Callable[[Sequence[WindowRequest], int, bool], list["asyncio.Future[WindowResult]"]]
GROUP_S = 120.0  # seconds of windows handed to the batcher at once (two long jobs' worth)
GROUPS_IN_FLIGHT = 2  # the next group waits in the batcher's queue while one decodes: no gap between jobs
BYTES_PER_SAMPLE = 4


def window_bytes_in_flight(audio: np.ndarray) -> int:
    """The most the copies of windows in flight take (reserve it before the windows are made)."""
    return min(audio.nbytes, int(GROUPS_IN_FLIGHT * GROUP_S * SAMPLE_RATE * BYTES_PER_SAMPLE))


@dataclasses.dataclass(frozen=True)
class WindowText:
    """One speech window decoded (in the upload's order): its segments on the upload's timeline, numbered
    on from the windows before it. Its text may be empty (a window of noise)."""

    index: int
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


@dataclasses.dataclass(frozen=True)
class _Plan:
    windows: list[SpeechWindow]
    options: TranscribeOptions  # what its windows are decoded with (the language detected once)
    detected: Language | None
    in_window: bool  # its one window finds the language itself (decoded asking for none: no pass of its own)
    first: WindowResult | None = None  # the first window, decoded already while choosing the language


async def _windows(engine: Engine, audio: np.ndarray, run: RunJob, chunking: Chunking | None,
                   options: TranscribeOptions) -> _Plan:
    """The upload's speech windows and how they are decoded: the language detected once (``upload_language``;
    between two close languages, chosen by decoding the first window in both: ``choose_upload_language``)."""
    speech = await run(lambda: engine.find_speech(audio))
    windows = cut_windows(chunking.apply(speech, len(audio)) if chunking else speech, len(audio))
    if not needs_language(engine, options, speech):
        return _Plan(windows, options, None, False)
    if len(windows) == 1 and window_detects(engine, windows[0]):
        return _Plan(windows, options, None, True)
    choice = await run(lambda: choose_upload_language(engine, audio, speech, options, windows[0] if windows else None))
    return _Plan(windows, in_language(options, choice.language), choice.language, False, choice.first)


async def transcribe_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions,
                             run: RunJob, decode: Decode, chunking: Chunking | None = None) -> Transcript:
    """``run`` runs a blocking job under the scheduler; ``decode`` hands windows to the batcher; ``chunking``:
    the client's say in the cuts (OpenAI's server_vad)."""
    plan = await _windows(engine, audio, run, chunking, options)
    windows, options, detected = plan.windows, plan.options, plan.detected
    speech = sum(w.samples for w in windows)
    pending: list[asyncio.Future[list[WindowResult]]] = []
    results: list[WindowResult] = [] if plan.first is None else [plan.first]
    try:
        for group in _groups(windows[len(results):]):
            pending.append(asyncio.ensure_future(decode([window_request(w, audio, options) for w in group], speech)))
            if len(pending) >= GROUPS_IN_FLIGHT:
                results += await pending.pop(0)
        for future in pending:
            results += await future
    finally:
        for future in pending:
            future.cancel()
    if plan.in_window:
        detected = (results[0].language, results[0].language_probability)
    # In a thread: an hour's windows hold ~10k words to place in segments (pure Python, ~0.1 s).
    return await asyncio.to_thread(assemble, windows, results, audio, options, detected)


def _groups(windows: Sequence[SpeechWindow]) -> list[list[SpeechWindow]]:
    groups: list[list[SpeechWindow]] = []
    size = GROUP_S * SAMPLE_RATE
    for window in windows:
        if not groups or size + window.samples > GROUP_S * SAMPLE_RATE:
            groups.append([])
            size = 0
        groups[-1].append(window)
        size += window.samples
    return groups


async def stream_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions, run: RunJob,
                         submit: Submit,
                         chunking: Chunking | None = None) -> AsyncGenerator[WindowText | Transcript, None]:
    """Each window's text in order, then the whole Transcript (the same as ``transcribe_windows``'s). The first
    hop is kept short: the speech is searched only until the first window is known for good (a minute of a
    long upload, ``SpeechSearch``), the language detected on it (it needs the first speech only), and that
    window decoded alone; the rest of the search runs after it, then the other windows go in groups as
    ``transcribe_windows`` hands them over, at most GROUPS_IN_FLIGHT at once. The windows, the language and
    each window's decoding are the same as ``transcribe_windows``'s: so is the text."""
    search = SpeechSearch(engine, audio, chunking)
    first = await run(search.first_window)  # the upload's admission, as the whole search is for the others
    # A first window of over 15 s of speech finds the language itself, on the encoding its decoding needs anyway
    # (the detection ``upload_language`` makes for the other paths), with no pass of its own before the first text.
    detect = needs_language(engine, options, search.speech)
    in_window = detect and first is not None and window_detects(engine, first)
    choice = (await run(lambda: choose_upload_language(engine, audio, search.speech, options, first))
              if detect and not in_window else None)
    detected = choice.language if choice else None
    options = in_language(options, detected)
    windows: list[SpeechWindow] = []
    in_flight: list[list[asyncio.Future[WindowResult]]] = []
    results: list[WindowResult] = []
    segments = 0

    def decoded(result: WindowResult) -> WindowText:
        nonlocal segments
        piece = window_segments(windows[len(results)], result, segments)
        results.append(result)
        segments += len(piece)
        return WindowText(len(results) - 1, tuple(piece))

    try:
        if first is not None:
            # Alone, to the short clips' queue: the first text comes as soon as a short clip's would (unless
            # choosing the language decoded it already).
            windows.append(first)
            if choice is not None and choice.first is not None:
                text = decoded(choice.first)
            else:
                in_flight.append(submit([window_request(first, audio, options)], first.samples, True))
                text = decoded(await in_flight.pop(0)[0])
            if in_window:
                detected = (results[0].language, results[0].language_probability)
                options = in_language(options, detected)
            yield text
        windows = await run(search.finish)
        assert windows[:1] == ([first] if first else []), "the first window changed as the search went on"
        speech = sum(w.samples for w in windows)
        for at, group in enumerate(_groups(windows[1:])):
            in_flight.append(submit([window_request(w, audio, options) for w in group], speech, False))
            if at + 1 < GROUPS_IN_FLIGHT:
                continue  # the next group waits in the batcher's queue while this one decodes
            for future in in_flight.pop(0):
                yield decoded(await future)
        while in_flight:
            for future in in_flight.pop(0):
                yield decoded(await future)
    finally:
        for group in in_flight:
            for future in group:
                future.cancel()  # a client that left: its windows not taken yet are dropped
    yield await asyncio.to_thread(assemble, windows, results, audio, options, detected)
