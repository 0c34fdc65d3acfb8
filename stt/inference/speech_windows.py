"""An upload as windows of speech: silence cut out, pieces joined up to 30 s, timestamps mapped back.

As faster-whisper's BatchedInferencePipeline does: speech found by the engine (Silero VAD) is joined, in
order and without the silence between, into windows of at most MAX_WINDOW_S; each window is decoded on its
own (no text carried over), and times in a window map back to the upload's own timeline. A window keeps the
speech pieces it was made of: they become the transcript's segments (when words were aligned), so a
segment ends at a pause, as Whisper's own segments mostly do.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import statistics
from collections.abc import Iterator, Sequence

import numpy as np

from stt.audio import SAMPLE_RATE, duration_seconds
from stt.engines.base import Engine, Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult, Word
from stt.engines.languages import choose_language
from stt.inference.chunking import Chunking

MAX_WINDOW_S = 30.0
MAX_WINDOW = int(MAX_WINDOW_S * SAMPLE_RATE)
LEAD_IN = SAMPLE_RATE  # detection starts at most 1 s before the first speech
Language = tuple[str, float]  # (code, probability)


@dataclasses.dataclass(frozen=True)
class SpeechWindow:
    pieces: tuple[tuple[int, int], ...]  # [start, end) samples of the upload, in order, at most 30 s in all

    @property
    def samples(self) -> int:
        return sum(end - start for start, end in self.pieces)

    def audio(self, upload: np.ndarray) -> np.ndarray:
        if len(self.pieces) == 1:  # a view: no copy of the upload
            return upload[self.pieces[0][0]:self.pieces[0][1]]
        return np.concatenate([upload[start:end] for start, end in self.pieces])

    def original_time(self, t: float) -> float:
        """Seconds in this window -> seconds in the upload (a time in a cut-out pause lands at its end)."""
        sample = max(0, round(t * SAMPLE_RATE))
        for start, end in self.pieces:
            if sample <= end - start:
                return (start + sample) / SAMPLE_RATE
            sample -= end - start
        return self.pieces[-1][1] / SAMPLE_RATE


def cut_windows(speech: Sequence[tuple[int, int]], length: int) -> list[SpeechWindow]:
    """Speech ranges (as Engine.find_speech gives them) joined greedily into windows of at most 30 s; a range
    longer than that (an engine that does not split) is split at 30 s."""
    pieces = [(max(0, s + i), min(e, s + i + MAX_WINDOW, length))
              for s, e in speech for i in range(0, max(0, e - s), MAX_WINDOW)]
    windows: list[SpeechWindow] = []
    current: list[tuple[int, int]] = []
    for piece in (p for p in pieces if p[1] > p[0]):
        if current and sum(e - s for s, e in current) + piece[1] - piece[0] > MAX_WINDOW:
            windows.append(SpeechWindow(tuple(current)))
            current = []
        current.append(piece)
    return windows + [SpeechWindow(tuple(current))] if current else windows


class SpeechSearch:
    """An upload's speech search, run a step at a time in scheduler jobs: the speech found so far, and the
    first window as soon as nothing found later can change it (a streamed upload decodes it while the rest
    is still unsearched). An engine with ``speech_steps`` (a generator of the speech found so far, only its
    last piece still open to change: stt.engines.speech.silero_steps) is searched a minute at a time; any
    other in one step, with ``find_speech``. Either way ``speech`` ends as ``find_speech`` answers."""

    def __init__(self, engine: Engine, audio: np.ndarray, chunking: Chunking | None = None) -> None:
        steps = getattr(engine, "speech_steps", None)
        self._steps: Iterator[list[tuple[int, int]]] | None = steps(audio) if steps is not None else None
        self._engine, self._audio = engine, audio
        self._length = len(audio)
        self._chunking = chunking
        self.speech: list[tuple[int, int]] = []
        self.done = False

    def _step(self) -> None:
        if self._steps is None:  # the whole search at once
            self.speech, self.done = self._engine.find_speech(self._audio), True
            return
        try:
            self.speech = next(self._steps)
        except StopIteration:
            self.done = True

    def first_window(self) -> SpeechWindow | None:
        """Blocking: searches until the upload's first window is known for good; None: no speech at all."""
        while True:
            windows = cut_windows(self._known(), self._length)
            # A window closed by one after it stays as it is: later speech only comes after, or makes the
            # piece still open longer (still too long to fit).
            if self.done or (len(windows) >= 2 and not self._holds_open_piece(windows[0])):
                return windows[0] if windows else None
            self._step()

    def finish(self) -> list[SpeechWindow]:
        """Blocking: the rest of the search; every window, cut as from ``find_speech``'s speech at once."""
        while not self.done:
            self._step()
        return cut_windows(self._known(), self._length)

    def _holds_open_piece(self, window: SpeechWindow) -> bool:
        """The piece still open was cut into this window (a piece longer than 30 s is cut in parts)."""
        return not self.done and bool(self.speech) and window.pieces[-1][1] > self.speech[-1][0]

    def _known(self) -> list[tuple[int, int]]:
        """What windows are cut from so far (the client's chunking applied). While searching, the last piece
        found may still grow: it is kept (its start is known, its length only grows), except with a chunking,
        which could join it with the pieces before it (their range is then left out too)."""
        if self.done or not self._chunking:
            return self._chunking.apply(self.speech, self._length) if self._chunking else list(self.speech)
        return self._chunking.apply(self.speech[:-1], self._length)[:-1]


def upload_language(engine: Engine, upload: np.ndarray, speech: Sequence[tuple[int, int]],
                    options: TranscribeOptions) -> Language | None:
    """The upload's language as detection alone finds it, on 30 s of the upload itself from just before its first
    speech (its pauses kept, as faster-whisper's ``transcribe`` detects; a short window padded with silence
    answered Chinese or Japanese for short accented English far more often than the engine; a long silent or
    musical intro does not decide it). None: the language was given, or there is no speech. Blocking: one
    encoder pass. The server uses ``choose_upload_language`` (stt.inference.language_choice), which starts from
    this detection; bench/bench_language.py compares them."""
    if not needs_language(engine, options, speech):
        return None
    ranked = upload_ranking(engine, upload, speech)
    return choose_language(ranked, options.languages) if ranked else None


def upload_ranking(engine: Engine, upload: np.ndarray, speech: Sequence[tuple[int, int]]) -> list[Language]:
    """Every language with its probability, most likely first, detected on 30 s of the upload from just before its
    first speech (``upload_language``). Blocking: one encoder pass."""
    start = max(0, speech[0][0] - LEAD_IN)
    return engine.detect_language(upload[start:start + MAX_WINDOW])


def window_detects(engine: Engine, window: SpeechWindow) -> bool:
    """Whether ``window``, asking for no language, gets the upload's language detected in its own decoding: on
    an engine that detects it on a window's own encoding (``detects_in_window``), a window that holds enough
    speech for it."""
    detects = getattr(engine, "detects_in_window", None)
    return detects is not None and bool(detects(window.samples))


def needs_language(engine: Engine, options: TranscribeOptions, speech: Sequence[tuple[int, int]]) -> bool:
    """Whether ``upload_language`` has anything to detect (an English-only model has not)."""
    return bool(speech) and not options.language and engine.multilingual


def in_language(options: TranscribeOptions, language: Language | None) -> TranscribeOptions:
    return dataclasses.replace(options, language=language[0]) if language else options


def window_request(window: SpeechWindow, upload: np.ndarray, options: TranscribeOptions) -> WindowRequest:
    # Words are always aligned: segments are cut from their timings (at pauses and sentence ends), or a
    # 30 s window would be one subtitle cue. The faces show words only when they were asked for.
    # Hotwords join the prompt of every window, as faster-whisper and the openai-whisper engine use them.
    prompt = " ".join(filter(None, (options.hotwords, options.initial_prompt))) or None
    # Encoded on the audio plus a few seconds (window_seconds), not a full 30 s window: measured on every shared
    # set (bench/bench_padding.py), a full window was no closer to the engine's WER and hallucinated a whole
    # sentence on a short non-native clip.
    return WindowRequest(window.audio(upload), options.language, prompt, options.beam_size, options.task,
                         words=True, languages=options.languages, all_speech=True)


def window_segments(window: SpeechWindow, result: WindowResult, first_id: int = 0) -> list[Segment]:
    """One decoded window's segments on the upload's timeline, numbered from ``first_id``."""
    segments: list[Segment] = []
    for start, end, text, words in _pieces(window, result):
        if text.strip():
            segments.append(Segment(first_id + len(segments), round(start, 3), round(end, 3), text, words,
                                    temperature=0.0, **_scores(result)))
    return segments


def assemble(windows: Sequence[SpeechWindow], results: Sequence[WindowResult], upload: np.ndarray,
             options: TranscribeOptions, detected: Language | None = None) -> Transcript:
    """``detected``: the upload's language as ``upload_language`` found it (with its probability)."""
    segments: list[Segment] = []
    for window, result in zip(windows, results):
        segments += window_segments(window, result, len(segments))
    language, probability = detected or _language(results, options)
    text = "".join(s.text for s in segments).strip()
    return Transcript(text, tuple(segments), language, probability, duration_seconds(upload))


def _scores(result: WindowResult) -> dict[str, float]:
    """The window's decoder scores on each of its segments (as Whisper gives a 30 s window's scores to every
    segment in it); none when the engine does not know them."""
    if result.scores is None:
        return {}
    return {"avg_logprob": result.scores.avg_logprob, "compression_ratio": result.scores.compression_ratio,
            "no_speech_prob": result.scores.no_speech_prob}


def _pieces(window: SpeechWindow, result: WindowResult) -> list[tuple[float, float, str, tuple[Word, ...]]]:
    """One segment per speech piece when words tell where each piece's text is, else one for the window."""
    if not result.words:
        first, last = window.pieces[0][0], window.pieces[-1][1]
        return [(first / SAMPLE_RATE, last / SAMPLE_RATE, " " + result.text.strip(), ())]
    mapped = [Word(round(window.original_time(w.start), 3), round(window.original_time(w.end), 3), w.word,
                   w.probability) for w in result.words]
    by_piece: list[list[Word]] = [[] for _ in window.pieces]
    for word in mapped:
        by_piece[_piece_of(window.pieces, (word.start + word.end) / 2)].append(word)
    return [(words[0].start, words[-1].end, "".join(w.word for w in words), words)
            for inside in by_piece for words in _sentences(tuple(inside))]


def _piece_of(pieces: Sequence[tuple[int, int]], t: float) -> int:
    """The piece that holds the time ``t`` (seconds), or, where ``t`` falls in a pause cut out between two, the
    nearer one: a word mapped across a cut-out pause stays with its neighbours, in order (such words were once
    gathered into a segment of their own, which put a piece's last word before the next piece's first)."""
    sample = t * SAMPLE_RATE
    k = max(0, bisect.bisect_right(pieces, (sample, math.inf)) - 1)
    if sample <= pieces[k][1] or k + 1 == len(pieces):
        return k
    return k if sample - pieces[k][1] <= pieces[k + 1][0] - sample else k + 1


def _sentences(words: tuple[Word, ...]) -> list[tuple[Word, ...]]:
    """Words cut after each sentence end (., ?, !), as Whisper's segments mostly are."""
    out: list[tuple[Word, ...]] = []
    current: list[Word] = []
    for word in words:
        current.append(word)
        if word.word.rstrip().endswith((".", "?", "!", "。", "？", "！")):
            out.append(tuple(current))
            current = []
    return out + [tuple(current)] if current else out


def _language(results: Sequence[WindowResult], options: TranscribeOptions) -> tuple[str, float]:
    if options.language:
        return options.language, 1.0
    if not results:
        return "en", 0.0  # no speech: nothing to detect from
    language = statistics.mode(r.language for r in results)
    return language, max(r.language_probability for r in results if r.language == language)
