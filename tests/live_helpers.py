"""Streaming helpers for the live tests: send audio like a client would and record what comes back."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jiwer
import numpy as np

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import WindowResult
from stt.live.session import Event, Pass, StreamSession
from tests.helpers import _EN, AUDIO_DIR, joined_with_gaps, manifest

CHUNK_S = 0.1  # 100 ms frames, as a microphone client sends them


@dataclasses.dataclass
class Received:
    messages: list[tuple[float, dict[str, Any]]]  # (seconds since the first audio frame, message)
    close_code: int | None
    close_reason: str
    audio_seconds: float = 0.0

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("type") == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.of("Results") if m["is_final"]]

    @property
    def interims(self) -> list[dict[str, Any]]:
        return [m for m in self.of("Results") if not m["is_final"]]

    @property
    def final_text(self) -> str:
        return " ".join(transcript(m) for m in self.finals if transcript(m))

    def first_time(self, predicate: Any) -> float | None:
        return next((t for t, m in self.messages if predicate(m)), None)


def transcript(message: dict[str, Any]) -> str:
    return message["channel"]["alternatives"][0]["transcript"]


def load_pcm16(relative: str, seconds: float | None = None) -> bytes:
    """A shared clip as 16 kHz mono little-endian Int16 (Deepgram's linear16)."""
    audio = decode_audio((AUDIO_DIR / relative).read_bytes())
    if seconds is not None:
        audio = audio[:int(seconds * SAMPLE_RATE)]
    return pcm16(audio)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def stream(ws: aiohttp.ClientWebSocketResponse, data: bytes, *, speed: float = 1.0,
                 chunk_bytes: int = int(CHUNK_S * SAMPLE_RATE) * 2, close: bool = True,
                 bytes_per_second: int = SAMPLE_RATE * 2) -> Received:
    """Send ``data`` in chunks paced at ``speed`` x real time (0: as fast as possible), then CloseStream right
    after the last frame; collect every message until the server closes."""
    started = time.monotonic()
    reader = asyncio.create_task(collect(ws, started))
    for i in range(0, len(data), chunk_bytes):
        await ws.send_bytes(data[i:i + chunk_bytes])
        if speed:
            due = started + (i + chunk_bytes) / bytes_per_second / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    if close:
        await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await asyncio.wait_for(reader, timeout=120)
    received.audio_seconds = len(data) / bytes_per_second
    return received


async def collect(ws: aiohttp.ClientWebSocketResponse, started: float | None = None) -> Received:
    """Every JSON message until the server closes, with the close code and reason."""
    started = time.monotonic() if started is None else started
    messages: list[tuple[float, dict[str, Any]]] = []
    reason = ""
    while True:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            messages.append((time.monotonic() - started, json.loads(msg.data)))
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            reason = msg.extra or ""
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
            break
    return Received(messages, ws.close_code, reason)


def speech_120s() -> tuple[bytes, str]:
    """LibriSpeech clips joined with 0.8 s gaps until at least 120 s (127.6 s, 308 words): (linear16, reference).
    Fits one 4 MiB message."""
    clips, total = [], 0.0
    for clip in manifest().values():
        if clip.category.startswith("librispeech"):
            clips.append(clip)
            total += clip.seconds + 0.8
            if total >= 120:
                break
    audio, _ = joined_with_gaps(clips, 0.8)
    return pcm16(audio), " ".join(c.transcript for c in clips)


def recovered(reference: str, hypothesis: str) -> float:
    """The share of the reference's words found in the hypothesis (aligned hits, after Whisper's normalizer)."""
    out = jiwer.process_words(_EN(reference), _EN(hypothesis))
    return out.hits / max(1, out.hits + out.substitutions + out.deletions)


def words_lost(reference: str, hypothesis: str) -> int:
    """Reference words missing from the hypothesis (deletions after Whisper's normaliser): what a stream lost,
    apart from words the model heard wrong."""
    return jiwer.process_words(_EN(reference), _EN(hypothesis)).deletions


def finalized_stream(session: StreamSession, decode: Callable[[Pass], WindowResult], audio: np.ndarray,
                     cut: int | None, silence_s: float = 3.0) -> list[Event]:
    """Issue 17's Finalize client, in process (no server): ``audio`` in 100 ms chunks, each pass the session asks
    for decoded at once by ``decode``; with ``cut`` (a sample), a Finalize there, then the rest and another
    Finalize; then ``silence_s`` of silence and the close. The session's events, in order."""
    events: list[Event] = []

    def feed(samples: np.ndarray) -> None:
        for i in range(0, len(samples), int(CHUNK_S * SAMPLE_RATE)):
            events.extend(session.feed(samples[i:i + int(CHUNK_S * SAMPLE_RATE)]))
            drain()

    def drain() -> None:
        while (step := session.next_pass()) is not None:
            events.extend(session.apply(step, decode(step)))

    for part in [audio] if cut is None else [audio[:cut], audio[cut:]]:
        feed(part)
        if cut is not None:
            events.extend(session.flush())
            drain()
    feed(np.zeros(int(silence_s * SAMPLE_RATE), dtype=np.float32))
    events.extend(session.flush(from_finalize=False))
    drain()
    return events
