"""Helpers for the Realtime face's tests and benchmark: audio as the Realtime API takes it, and a raw client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import av
import numpy as np
import soxr

from stt.audio import SAMPLE_RATE, decode_audio
from tests.helpers import AUDIO_DIR

RATE = 24000  # OpenAI's PCM16 rate
CHUNK_S = 0.1


def pcm24(audio16k: np.ndarray) -> bytes:
    """16 kHz float audio -> 24 kHz little-endian PCM16 (what input_audio_buffer.append carries)."""
    audio = soxr.resample(audio16k, SAMPLE_RATE, RATE)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def clip_pcm24(relative: str, silence_after_s: float = 0.0) -> bytes:
    audio = decode_audio((AUDIO_DIR / relative).read_bytes())
    return pcm24(np.concatenate([audio, np.zeros(int(silence_after_s * SAMPLE_RATE), np.float32)]))


def g711(audio16k: np.ndarray, law: str) -> bytes:
    """16 kHz float audio -> 8 kHz G.711 bytes, encoded by FFmpeg (an encoder independent of the server's)."""
    codec = av.CodecContext.create("pcm_mulaw" if law == "ulaw" else "pcm_alaw", "w")
    codec.sample_rate, codec.layout, codec.format = 8000, "mono", "s16"
    pcm = (np.clip(soxr.resample(audio16k, SAMPLE_RATE, 8000), -1, 1) * 32767).astype("<i2")
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    return b"".join(bytes(p) for p in codec.encode(frame)) + b"".join(bytes(p) for p in codec.encode(None))


def append(data: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})


async def send_audio(ws: aiohttp.ClientWebSocketResponse, data: bytes, *, speed: float = 1.0,
                     bytes_per_second: int = RATE * 2, chunk_s: float = CHUNK_S) -> None:
    """Append ``data`` in chunks paced at ``speed`` x real time (0: as fast as possible)."""
    chunk = int(chunk_s * bytes_per_second) // 2 * 2
    started = time.monotonic()
    for i in range(0, len(data), chunk):
        await ws.send_str(append(data[i:i + chunk]))
        if speed:
            due = started + (i + chunk) / bytes_per_second / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))


async def receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 60.0,
                        into: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Events until one of type ``kind`` (returned); every event read is appended to ``into``."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended before {kind}: {msg.type} {msg.data} {msg.extra}")
            event = json.loads(msg.data)
            if into is not None:
                into.append(event)
            if event["type"] == kind:
                return event


async def events_until_close(ws: aiohttp.ClientWebSocketResponse, timeout: float = 60.0) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return out
            out.append(json.loads(msg.data))


STARTED, STOPPED = "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"
COMMITTED = "input_audio_buffer.committed"
DELTA, COMPLETED = ("conversation.item.input_audio_transcription.delta",
                    "conversation.item.input_audio_transcription.completed")


def check_items(events: list[dict[str, Any]]) -> dict[str, str]:
    """OpenAI's server-VAD contract over a whole session: speech_started and speech_stopped alternate with the
    same item_id; speech_stopped is followed at once by that item's committed (previous_item_id chaining the
    commits); every committed item gets exactly one completed, after it, whose transcript is its deltas joined.
    Returns each item's transcript."""
    open_item: str | None = None
    previous: str | None = None
    committed: set[str] = set()
    deltas: dict[str, list[str]] = {}
    done: dict[str, str] = {}
    for i, event in enumerate(events):
        kind, item = event["type"], event.get("item_id")
        if kind == STARTED:
            assert open_item is None, f"speech_started for {item} while {open_item} is open"
            open_item = item
        elif kind == STOPPED:
            assert item == open_item, (item, open_item)
            assert events[i + 1]["type"] == COMMITTED and events[i + 1]["item_id"] == item
            open_item = None
        elif kind == COMMITTED:
            assert item not in committed and item != open_item
            assert event["previous_item_id"] == previous
            committed.add(item)
            previous = item
        elif kind == DELTA:
            assert item in committed and item not in done
            deltas.setdefault(item, []).append(event["delta"])
        elif kind == COMPLETED:
            assert item in committed and item not in done, item
            assert event["transcript"] == "".join(deltas.get(item, []))
            done[item] = event["transcript"]
    assert open_item is None, f"{open_item} was never stopped"
    assert set(done) == committed, committed - set(done)
    return done


async def events_until_turns_done(ws: aiohttp.ClientWebSocketResponse, sending: asyncio.Task[None],
                                  timeout: float = 120.0) -> list[dict[str, Any]]:
    """Events while ``sending`` appends, until it is done and every item speech opened is completed (the last one
    may complete before the sender's trailing silence is sent: both are waited for, never an event alone)."""
    events: list[dict[str, Any]] = []

    def done() -> bool:
        kinds = [e["type"] for e in events]
        return sending.done() and kinds.count(COMPLETED) >= kinds.count(STARTED) > 0

    receiving = asyncio.ensure_future(ws.receive())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.wait({receiving} if sending.done() else {receiving, sending},
                                   return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    continue
                msg = receiving.result()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"socket ended: {msg.type} {msg.data} {[e['type'] for e in events]}")
                events.append(json.loads(msg.data))
                if events[-1]["type"] == "error":
                    raise AssertionError(events[-1])
                receiving = asyncio.ensure_future(ws.receive())
    finally:
        receiving.cancel()
    await sending
    return events
