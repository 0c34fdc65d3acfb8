"""Shared test helpers: the shared audio set, word error rate, fake engines."""

from __future__ import annotations

import csv
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import jiwer
import numpy as np
from whisper.normalizers import EnglishTextNormalizer, BasicTextNormalizer

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Segment, TranscribeOptions, Transcript, WindowRequest, WindowResult, Word
from stt.engines.windows import decode_by_transcribe

ROOT = Path(__file__).resolve().parents[1]
AUDIO_DIR = Path(os.environ.get("STT_AUDIO_DIR", ROOT.parent / "shared" / "audio"))
TOKEN = "test-token-123"


@dataclasses.dataclass(frozen=True)
class Clip:
    file: str
    seconds: float
    rate: int
    channels: int
    transcript: str
    lang: str
    category: str

    @property
    def path(self) -> Path:
        return AUDIO_DIR / self.file


def manifest() -> dict[str, Clip]:
    with (AUDIO_DIR / "manifest.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["file"]: Clip(r["file"], float(r["seconds"]), int(r["rate"]), int(r["channels"]),
                            r["transcript"], r["lang"], r["category"]) for r in rows}


def joined_with_gaps(clips: Sequence[Clip], gap_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clips decoded and joined with ``gap_s`` of silence before, between and after them, and each clip's
    (start, end) in seconds on that timeline: utterances of known boundaries, to time results against."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    parts, spans, at = [gap], [], gap_s
    for clip in clips:
        audio = decode_audio(clip.path.read_bytes())
        parts += [audio, gap]
        spans.append((at, at + len(audio) / SAMPLE_RATE))
        at += len(audio) / SAMPLE_RATE + gap_s
    return np.concatenate(parts), spans


def librispeech_clips() -> list[Clip]:
    return [c for c in manifest().values() if c.category == "librispeech test-clean"]


_EN = EnglishTextNormalizer()
_BASIC = BasicTextNormalizer()


def wer(reference: str | list[str], hypothesis: str | list[str], lang: str = "en") -> float:
    """Word error rate after Whisper's own text normalizer (the one its published WERs use)."""
    norm = _EN if lang == "en" else _BASIC
    refs = [reference] if isinstance(reference, str) else reference
    hyps = [hypothesis] if isinstance(hypothesis, str) else hypothesis
    return jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])


class FakeEngine:
    """A stand-in for HTTP-contract tests: answers from the audio's length, can be slowed or made to fail."""

    name = "fake"
    model_name = "fake"
    multilingual = True
    parallel_calls = 1

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.fail_next = False
        self.calls = 0
        self.running = threading.Event()
        self.lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        with self.lock:
            self.calls += 1
            fail, self.fail_next = self.fail_next, False
        self.running.set()
        time.sleep(self.delay)
        if fail:
            raise RuntimeError("injected engine fault")
        seconds = len(audio) / 16000
        words = (Word(0.0, seconds / 2, " hello", 0.9), Word(seconds / 2, seconds, " world", 0.8))
        segment = Segment(0, 0.0, seconds, " hello world", words=words if options.word_timestamps else ())
        return Transcript("hello world", (segment,), options.language or "en", 0.99, seconds)

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        return decode_by_transcribe(self, requests)

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """All of it, so every request reaches transcribe (contract tests send tones, not speech)."""
        return [(0, len(audio))] if len(audio) else []

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        return [("en", 0.95), ("de", 0.05)]  # sure of English: one decoding (stt.inference.language_choice)

    def close(self) -> None:
        pass


def encode(audio: np.ndarray, rate: int, fmt: str, codec: str) -> bytes:
    """Encode mono float audio into a container with FFmpeg (PyAV), e.g. ("webm", "libopus") as browsers send."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        pts = 0
        for start in range(0, len(pcm), frame_size):
            chunk = pcm[start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            pts += len(chunk)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def wav(audio: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
