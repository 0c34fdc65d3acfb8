"""The engine interface: audio in, Transcript out. Engines know nothing of HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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
    # The decoder's scores of the window the segment came from; None where unknown (left out of answers).
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
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
    languages: tuple[str, ...] = ()  # without ``language``: detection answers one of these (empty: any)
    task: str = "transcribe"  # or "translate" (to English)
    beam_size: int = 5
    word_timestamps: bool = False
    vad_filter: bool = True  # speech windows, batched (stt.inference); False: the engine's sequential decoding
    initial_prompt: str | None = None
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    condition_on_previous_text: bool = True
    without_timestamps: bool = False
    hotwords: str | None = None  # names and terms to spell right: faster-whisper's hotword prompting


@dataclasses.dataclass(frozen=True)
class WindowRequest:
    """One window of at most 30 s: a live stream's pass or a piece of an upload cut at a pause."""

    audio: np.ndarray  # 16 kHz mono float32, at most 30 s
    language: str | None = None
    prompt: str | None = None  # text said before this window: context for spelling and style
    beam_size: int = 1
    task: str = "transcribe"  # or "translate" (to English)
    words: bool = True  # word timings wanted (one alignment pass)
    languages: tuple[str, ...] = ()  # without ``language``: detection answers one of these (empty: any)
    # Encoded on a full 30 s window, as Whisper encodes (uploads: the engine's accuracy); False: on the audio
    # plus a few seconds of silence (live passes: a fraction of the encoder's cost, for latency).
    full_window: bool = False
    # Every second of the audio is speech (an upload's window, cut from the VAD's speech): a decoding that stops
    # well before its end left speech out, and the rest is decoded (stt.engines.rests). Not a live pass, which
    # holds the pauses of its utterance.
    all_speech: bool = False


@dataclasses.dataclass(frozen=True)
class WindowScores:
    """Whisper's per-window decoder scores (what its segments report, and its fallback rules test)."""

    avg_logprob: float  # log-probability of the decoded tokens, averaged
    compression_ratio: float  # gzip ratio of the text: above 2.4 it repeats itself
    no_speech_prob: float  # probability of <|nospeech|> at the first decoding step
    # log-probability of the whole decoded text (the sum over its tokens): how likely the decoder finds this
    # text for this audio, which a choice between two languages weighs (stt.inference.language_choice).
    # None: the engine does not report it.
    logprob: float | None = None


@dataclasses.dataclass(frozen=True)
class WindowResult:
    text: str  # the whole window's text
    words: tuple[Word, ...]  # times in seconds from the window's start; () when not asked for
    language: str
    language_probability: float = 1.0
    scores: WindowScores | None = None  # None: the engine does not know them


class Engine(Protocol):
    """A loaded model. Methods block and are only ever called from the scheduler's worker threads."""

    name: str
    model_name: str
    multilingual: bool
    parallel_calls: int  # model calls that may run at once (from different scheduler threads)

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript: ...

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        """Each window decoded on its own (no context across windows), results in the order given. Engines
        that can decode many in one batched pass do; ``stt.engines.windows.decode_by_transcribe`` serves the
        others with one ``transcribe`` call per window."""
        ...

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """Speech as [start, end) sample ranges, each at most 30 s, in order; [] when there is none.
        Both real engines use Silero VAD (stt.engines.speech)."""
        ...

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Languages with their probabilities, most likely first."""
        ...

    def close(self) -> None: ...


def join_segments(segments: tuple[Segment, ...] | list[Segment]) -> str:
    return "".join(s.text for s in segments).strip()
