"""An upload decoded as speech windows: find the speech, cut it into windows, decode them with other work.

Finding the speech is one scheduler job (the upload's admission: a full queue or a queue timeout refuses it
there, as before). Silence is never decoded: an upload of silence costs one VAD pass and answers "". The
windows then go to the shared WindowBatcher, batched with other uploads' windows, the uploads taking turns.
``stream_windows`` gives each window's text as soon as it and the windows before it are decoded (OpenAI's
``stream=true``), then the whole transcript, the same as ``transcribe_windows`` answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing

import numpy as np

from stt.engines.base import Engine, Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult
from stt.inference.chunking import Chunking
from stt.inference.speech_windows import SpeechWindow, assemble, cut_windows, window_request, window_segments

FindSpeech = Callable[[Callable[[], list[tuple[int, int]]]], Awaitable[list[tuple[int, int]]]]
Decode = Callable[[Sequence[WindowRequest]], Awaitable[list[WindowResult]]]
DecodeEach = Callable[[Sequence[WindowRequest]], AsyncGenerator[WindowResult, None]]


@dataclasses.dataclass(frozen=True)
class WindowText:
    """One speech window decoded (in the upload's order): its segments on the upload's timeline, numbered
    on from the windows before it. Its text may be empty (a window of noise)."""

    index: int
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


async def _windows(engine: Engine, audio: np.ndarray, run: FindSpeech,
                   chunking: Chunking | None) -> list[SpeechWindow]:
    speech = await run(lambda: engine.find_speech(audio))
    return cut_windows(chunking.apply(speech, len(audio)) if chunking else speech, len(audio))


async def transcribe_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions,
                             run: FindSpeech, decode: Decode, chunking: Chunking | None = None) -> Transcript:
    """``run`` runs a blocking job under the scheduler; ``decode`` hands windows to the batcher."""
    windows = await _windows(engine, audio, run, chunking)
    results = await decode([window_request(w, audio, options) for w in windows]) if windows else []
    return assemble(windows, results, audio, options)


async def stream_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions, run: FindSpeech,
                         decode_each: DecodeEach,
                         chunking: Chunking | None = None) -> AsyncGenerator[WindowText | Transcript, None]:
    """Each window's text in order, then the whole Transcript (the same as ``transcribe_windows``'s).
    ``decode_each`` yields the windows' results in order, each as soon as it is decoded."""
    windows = await _windows(engine, audio, run, chunking)
    results: list[WindowResult] = []
    segments = 0
    if windows:
        async with aclosing(decode_each([window_request(w, audio, options) for w in windows])) as decoded:
            async for result in decoded:
                piece = window_segments(windows[len(results)], result, segments)
                results.append(result)
                segments += len(piece)
                yield WindowText(len(results) - 1, tuple(piece))
    yield assemble(windows, results, audio, options)
