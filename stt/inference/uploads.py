"""An upload decoded window by window: a few windows per scheduler job, each job queued anew.

The first job finds the speech (silence is never decoded: an upload of silence costs one VAD pass and
answers "") and decodes the first windows; later jobs decode the rest. Between two jobs of one upload, the
scheduler serves whatever waits with a higher priority (live passes) or arrived earlier (the next job of
another upload), so a long upload cannot hold the worker for minutes, and a client that leaves stops its
upload at the next job boundary. Windows of one job that are close in length decode as one batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np

from stt.audio import SAMPLE_RATE
from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowResult
from stt.inference.speech_windows import SpeechWindow, assemble, cut_windows, window_request

T = TypeVar("T")
Run = Callable[[Callable[[], T]], Awaitable[T]]  # runs a blocking job under the scheduler
# Audio decoded per job: two full windows. More batches better on a GPU, but a live pass or another upload
# waits for at most one job; on 2 CPU threads a 30 s window of base takes ~1.5 s.
JOB_AUDIO_S = 60.0


async def transcribe_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions, run: Run) -> Transcript:
    def first() -> tuple[list[SpeechWindow], list[WindowResult]]:
        windows = cut_windows(engine.find_speech(audio), len(audio))
        return windows, _decode(engine, audio, options, _batch(windows))

    windows, results = await run(first)
    while len(results) < len(windows):
        batch = _batch(windows[len(results):])
        results += await run(lambda: _decode(engine, audio, options, batch))
    return assemble(windows, results, audio, options)


def _batch(windows: Sequence[SpeechWindow]) -> list[SpeechWindow]:
    taken: list[SpeechWindow] = []
    budget = int(JOB_AUDIO_S * SAMPLE_RATE)
    for window in windows:
        if taken and window.samples > budget:
            break
        taken.append(window)
        budget -= window.samples
    return taken


def _decode(engine: Engine, audio: np.ndarray, options: TranscribeOptions,
            windows: Sequence[SpeechWindow]) -> list[WindowResult]:
    if not windows:
        return []
    return engine.decode_windows([window_request(w, audio, options) for w in windows])
