"""A streamed upload's first hop: the speech is searched a minute at a time and the first window is decoded as
soon as later speech cannot change it, before the rest is searched; the windows, and so the text, are the same
as from the whole search at once."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines import speech
from stt.engines.base import TranscribeOptions, WindowRequest, WindowResult
from stt.inference.chunking import Chunking
from stt.inference.scheduler import Priority, Scheduler
from stt.inference.speech_windows import SpeechSearch, SpeechWindow, cut_windows
from stt.inference.uploads import WindowText, stream_windows, transcribe_windows
from stt.inference.window_batcher import WindowBatcher
from tests.helpers import AUDIO_DIR
from tests.inference.test_inference_windows import WindowEngine

S = SAMPLE_RATE
MINUTE = 60 * S
CHUNKINGS = [None, Chunking(), Chunking(silence_s=0.5), Chunking(silence_s=3.0, padding_s=1.0)]


def nonzero_speech(chunk: np.ndarray, _options: Any) -> list[dict[str, int]]:
    """Stands in for Silero on one chunk: speech where the samples are not zero (up to 30 s a piece)."""
    found = WindowEngine().find_speech(chunk)
    return [{"start": s, "end": min(e, s + 30 * S)} for s, e in found]


def layout(rng: random.Random, minutes: int) -> np.ndarray:
    """Speech and pauses of random lengths (speech often running across a minute's edge)."""
    audio = np.zeros(minutes * MINUTE, np.float32)
    at = rng.randrange(0, 5 * S)
    while at < len(audio):
        length = rng.randrange(S // 2, 29 * S)
        audio[at:at + length] = 1.0
        at += length + rng.choice([0, 1, S // 10, S, 3 * S, 70 * S])
    return audio


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_first_window_is_the_whole_searchs_first_window(monkeypatch: pytest.MonkeyPatch,
                                                         chunking: Chunking | None) -> None:
    monkeypatch.setattr(speech, "get_speech_timestamps", nonzero_speech)

    class Steps(WindowEngine):
        def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
            return speech.silero_steps(audio)

    rng = random.Random(17)
    early = 0
    for _ in range(80):
        audio = layout(rng, rng.randrange(1, 6))
        whole = speech.silero_speech(audio)
        expected = cut_windows(chunking.apply(whole, len(audio)) if chunking else whole, len(audio))
        search = SpeechSearch(Steps(), audio, chunking)
        first = search.first_window()
        early += not search.done
        assert first == (expected[0] if expected else None)
        assert search.finish() == expected and search.speech == whole
    assert early > 25  # many uploads' first window was known before the whole search


def test_a_chunking_join_that_later_speech_undoes(monkeypatch: pytest.MonkeyPatch) -> None:
    """silence_s=3 joins two pieces 1 s apart while the second, still open at the minute's edge, is short; once
    it is longer the join would pass 30 s and is undone, and the first window takes the first of them after all."""
    monkeypatch.setattr(speech, "get_speech_timestamps", nonzero_speech)
    audio = np.zeros(150 * S, np.float32)
    for start, end in ((1, 16), (40, 50), (51, 75), (100, 120)):
        audio[start * S:end * S] = 1.0

    class Steps(WindowEngine):
        def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
            return speech.silero_steps(audio)

    search = SpeechSearch(Steps(), audio, Chunking(silence_s=3.0))
    assert search.first_window() == SpeechWindow(((1 * S, 16 * S), (40 * S, 50 * S)))


def test_an_engine_without_steps_is_searched_at_once() -> None:
    audio = np.concatenate([np.zeros(S, np.float32), np.ones(50 * S, np.float32)])
    search = SpeechSearch(WindowEngine(), audio)
    assert search.first_window() == cut_windows([(S, 51 * S)], len(audio))[0] and search.done


def test_real_silero_on_the_chapter_needs_its_first_minute_only() -> None:
    chapter = decode_audio((AUDIO_DIR / "long/1089-134686_full_chapter.flac").read_bytes())
    searched: list[int] = []

    class Silero(WindowEngine):
        def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
            for found in speech.silero_steps(audio):
                searched.append(1)
                yield found

    search = SpeechSearch(Silero(), chapter)
    first = search.first_window()
    assert len(searched) == 1  # of five minutes
    assert first == cut_windows(speech.silero_speech(chapter), len(chapter))[0]
    assert search.finish() == cut_windows(speech.silero_speech(chapter), len(chapter)) and len(searched) == 5


class Ordered(WindowEngine):
    """Searched a minute at a time; records the order of the searches, detections and decodings."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def speech_steps(self, audio: np.ndarray) -> Iterator[list[tuple[int, int]]]:
        for minute in range(0, len(audio), MINUTE):
            self.log.append(f"search {minute // MINUTE}")
            yield self.find_speech(audio[:minute + MINUTE])

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        self.log.append("detect")
        return [("de", 0.8)]

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.log += [f"decode {r.audio[0]:g}" for r in requests]
        return super().decode_windows(requests)


def four_windows() -> np.ndarray:
    """Four 29 s stretches of 'speech' (values 1-4), 2 s apart: two minutes and a bit."""
    gap = np.zeros(2 * S, np.float32)
    return np.concatenate([p for v in (1, 2, 3, 4) for p in (gap, np.full(29 * S, v, np.float32))])


async def streamed_and_plain(engine: Any, audio: np.ndarray, workers: int = 1,
                             log: list[str] | None = None) -> tuple[list[Any], list[str], Any]:
    """``audio`` streamed (``stream_windows``), then transcribed plain, as the service runs both: the stream's
    events, what ``log`` (the engine's record) held after the stream (emptied then), and the plain Transcript."""
    scheduler = Scheduler(workers, 16, 60, reserved=1)
    batcher = WindowBatcher(scheduler, engine)
    run = lambda job: scheduler.run(job, None, Priority.SPEECH)  # noqa: E731
    try:
        events = [e async for e in stream_windows(
            engine, audio, TranscribeOptions(), run,
            lambda windows, samples, alone: batcher.submit(windows, object(), upload_samples=samples, alone=alone))]
        streamed = list(log or [])
        if log is not None:
            log.clear()
        plain = await transcribe_windows(engine, audio, TranscribeOptions(), run,
                                         lambda windows, samples: batcher.decode(windows, object(),
                                                                                 upload_samples=samples))
    finally:
        scheduler.close()
    return events, streamed, plain


async def test_stream_decodes_the_first_window_before_searching_the_rest() -> None:
    engine = Ordered()
    events, streamed_log, plain = await streamed_and_plain(engine, four_windows(), log=engine.log)
    # Window 1 ends in the first minute, and window 2 (starting there) closes it: a minute searched was enough.
    assert streamed_log[:4] == ["search 0", "detect", "decode 1", "search 1"]
    assert streamed_log[4:] == ["search 2", "decode 2", "decode 3", "decode 4"]
    texts = [e for e in events if isinstance(e, WindowText)]
    assert [t.text for t in texts] == [" 1", " 2", " 3", " 4"]
    assert events[-1] == plain and plain.language == "de"  # the same transcript, its language detected once


class DetectsInWindow(Ordered):
    """Detects a window's language on its own encoding when it holds enough speech (here over 25 s; the
    faster-whisper engine: over 15 s): such a window asking for no language gets "fr"."""

    FULL = 25 * S

    def detects_in_window(self, samples: int) -> bool:
        return samples > self.FULL

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.log += [f"decode {r.audio[0]:g} in {r.language}" for r in requests]
        out = WindowEngine.decode_windows(self, requests)
        return [dataclasses.replace(o, language=r.language or "fr", language_probability=0.6 if not r.language else 1.0)
                if len(r.audio) > self.FULL else o for o, r in zip(out, requests)]


async def test_a_full_first_window_finds_the_language_itself_when_streamed() -> None:
    """The first text of a streamed upload waits for no detection pass of its own when its first window detects
    in itself: that window is decoded asking for no language, and the language its decoding finds is the upload's;
    the plain path decodes that window the same way, once, and every other window in its language."""
    engine = DetectsInWindow()
    events, streamed_log, plain = await streamed_and_plain(engine, four_windows(), log=engine.log)
    assert streamed_log[:3] == ["search 0", "decode 1 in None", "search 1"]  # no detection before the first text
    assert streamed_log[3:] == ["search 2", "decode 2 in fr", "decode 3 in fr", "decode 4 in fr"]
    assert "detect" not in engine.log  # plain: the same first window's decoding gives the language
    decodes = [e for e in engine.log if e.startswith("decode")]
    assert decodes == ["decode 1 in None", *(f"decode {v} in fr" for v in (2, 3, 4))]
    assert events[-1] == plain and (plain.language, plain.language_probability) == ("fr", 0.6)


async def test_a_short_first_window_is_detected_on_the_upload_itself() -> None:
    """A first window too short to detect in itself (here 25 s or less): the language is detected on 30 s of the
    upload itself, before the first text, on both paths."""
    engine = DetectsInWindow()
    gap = np.zeros(2 * S, np.float32)
    audio = np.concatenate([gap, np.full(10 * S, 1, np.float32), np.zeros(40 * S, np.float32),
                            np.full(29 * S, 2, np.float32)])
    events, _, plain = await streamed_and_plain(engine, audio)
    assert "decode 1 in None" not in engine.log and engine.log.count("detect") == 2
    assert engine.log.index("detect") < engine.log.index("decode 1 in de")
    assert events[-1] == plain and plain.language == "de"


async def test_an_upload_of_one_window_that_detects_in_it_finds_its_language_itself() -> None:
    """Plain or streamed, an upload whose only window finds the language on its own encoding is decoded asking for
    none: no detection pass, and its language is the one the decoding found."""
    engine = DetectsInWindow()
    audio = np.concatenate([np.zeros(2 * S, np.float32), np.full(27 * S, 1, np.float32)])
    events, streamed_log, plain = await streamed_and_plain(engine, audio, log=engine.log)
    assert streamed_log == ["search 0", "decode 1 in None"] and engine.log == ["decode 1 in None"]
    assert events[-1] == plain and (plain.language, plain.language_probability) == ("fr", 0.6)
