"""Short-window decoding for live streams: one utterance window in, its words with timings out.

Engines that can decode many windows in one batched pass implement ``WindowDecoder``; any other engine is
served by ``decode_windows``' fallback, one ``transcribe`` call per window, so live streaming works on
every engine and batching is an optimisation, not a requirement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from stt.engines.base import Engine, TranscribeOptions, Word


@dataclasses.dataclass(frozen=True)
class WindowRequest:
    audio: np.ndarray  # 16 kHz mono float32, at most 30 s
    language: str | None = None
    prompt: str | None = None  # text said before this window: context for spelling and style
    beam_size: int = 1


@dataclasses.dataclass(frozen=True)
class WindowResult:
    text: str  # the whole window's text
    words: tuple[Word, ...]  # times in seconds from the window's start
    language: str


@runtime_checkable
class WindowDecoder(Protocol):
    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]: ...


def decode_windows(engine: Engine, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    """Blocking; call from a scheduler job only."""
    if isinstance(engine, WindowDecoder):
        return engine.decode_windows(requests)
    return [_transcribe_window(engine, r) for r in requests]


def _transcribe_window(engine: Engine, request: WindowRequest) -> WindowResult:
    options = TranscribeOptions(language=request.language, beam_size=request.beam_size, word_timestamps=True,
                                initial_prompt=request.prompt, temperature=(0.0,),
                                condition_on_previous_text=False)
    transcript = engine.transcribe(request.audio, options)
    words = tuple(w for s in transcript.segments for w in s.words)
    return WindowResult(transcript.text, words, transcript.language)
