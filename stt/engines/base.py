"""The engine interface: audio in, Transcript out. Engines know nothing of HTTP."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's fallback schedule


@dataclasses.dataclass(frozen=True)
class Word:
    start: float  # seconds
    end: float
    word: str  # with its leading space, as Whisper emits it
    probability: float
    speaker: int | None = None  # set by diarization (stt/diarization), never by an engine
    speaker_confidence: float | None = None


@dataclasses.dataclass(frozen=True)
class Segment:
    id: int
    start: float  # seconds
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    tokens: tuple[int, ...] = ()
    speaker: int | None = None  # set by diarization: the speaker of most of its words


@dataclasses.dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float  # seconds of audio


@dataclasses.dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect
    task: str = "transcribe"  # or "translate" (to English)
    beam_size: int = 5
    word_timestamps: bool = False
    vad_filter: bool = False
    initial_prompt: str | None = None
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    condition_on_previous_text: bool = True
    without_timestamps: bool = False
    hotwords: str | None = None  # names and terms to spell right: faster-whisper's hotword prompting


class Engine(Protocol):
    """A loaded model. Methods block and are only ever called from the scheduler's worker threads."""

    name: str
    model_name: str
    multilingual: bool

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript: ...

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Languages with their probabilities, most likely first."""
        ...

    def close(self) -> None: ...


def join_segments(segments: tuple[Segment, ...] | list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()
