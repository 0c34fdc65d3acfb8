"""An upload decoded as speech windows: find the speech, cut it into windows, decode them with other work.

Finding the speech is one scheduler job (the upload's admission: a full queue or a queue timeout refuses it
there, as before). Silence is never decoded: an upload of silence costs one VAD pass and answers "". The
windows then go to the shared WindowBatcher, batched with other uploads' windows, the uploads taking turns.

A window's audio is a copy of its speech pieces (a view when it is one piece): they are handed over a group of
``GROUP_S`` at a time, at most ``GROUPS_IN_FLIGHT`` groups at once, so the copies never grow with the upload
(all of a 4 h upload's windows at once were a second copy of its speech). Each window is decoded on its own,
so the grouping changes nothing in the transcript.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowRequest, WindowResult
from stt.audio import SAMPLE_RATE
from stt.inference.speech_windows import SpeechWindow, assemble, cut_windows, window_request

FindSpeech = Callable[[Callable[[], list[tuple[int, int]]]], Awaitable[list[tuple[int, int]]]]
Decode = Callable[[Sequence[WindowRequest], int], Awaitable[list[WindowResult]]]  # windows, the upload's speech
GROUP_S = 120.0  # seconds of windows handed to the batcher at once (two long jobs' worth)
GROUPS_IN_FLIGHT = 2  # the next group waits in the batcher's queue while one decodes: no gap between jobs
BYTES_PER_SAMPLE = 4


def window_bytes_in_flight(audio: np.ndarray) -> int:
    """The most the copies of windows in flight take (reserve it before the windows are made)."""
    return min(audio.nbytes, int(GROUPS_IN_FLIGHT * GROUP_S * SAMPLE_RATE * BYTES_PER_SAMPLE))


async def transcribe_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions,
                             run: FindSpeech, decode: Decode) -> Transcript:
    """``run`` runs a blocking job under the scheduler; ``decode`` hands windows to the batcher."""
    windows = cut_windows(await run(lambda: engine.find_speech(audio)), len(audio))
    speech = sum(w.samples for w in windows)
    pending: list[asyncio.Future[list[WindowResult]]] = []
    results: list[WindowResult] = []
    try:
        for group in _groups(windows):
            pending.append(asyncio.ensure_future(decode([window_request(w, audio, options) for w in group], speech)))
            if len(pending) >= GROUPS_IN_FLIGHT:
                results += await pending.pop(0)
        for future in pending:
            results += await future
    finally:
        for future in pending:
            future.cancel()
    return assemble(windows, results, audio, options)


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
