"""Live finals on the shared sets: the issue 15 row "runaway outputs ... uploads and live finals".

Each clip is streamed to the Deepgram live face (``/v1/listen``, linear16 16 kHz, the clip's language as a live
client configures it, default endpointing) in 100 ms frames as fast as the server takes them (its
back-pressure paces the sender), followed by 1 s of silence and CloseStream; the finals' texts joined are the
hypothesis. One stream at a time, or ``concurrency`` streams at once (different clips). Scored as the upload
rows are: corpus WER after Whisper's normaliser, runaway outputs, and the words the finals lost against the
reference (``words_lost``: reference words with no match, so a stream that drops an utterance shows here).

Interface for bench/bench_accuracy.py: ``live_answers(url, token, clips, concurrency) -> list[str]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
import sys

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from tests.helpers import Clip  # noqa: E402
from tests.live_helpers import pcm16, stream  # noqa: E402

TRAILING_SILENCE_S = 1.0


def live_path(lang: str) -> str:
    return f"/v1/listen?encoding=linear16&sample_rate={SAMPLE_RATE}&punctuate=true&language={lang}"


async def live_answer(session: aiohttp.ClientSession, url: str, token: str, clip: Clip) -> str:
    audio = decode_audio(clip.path.read_bytes())
    data = pcm16(np.concatenate([audio, np.zeros(int(TRAILING_SILENCE_S * SAMPLE_RATE), np.float32)]))
    async with session.ws_connect(url + live_path(clip.lang), headers={"Authorization": f"Token {token}"},
                                  max_msg_size=0) as ws:
        received = await stream(ws, data, speed=0)
    if received.close_code != 1000:
        raise RuntimeError(f"{clip.file}: live stream closed with {received.close_code} {received.close_reason}")
    return " ".join(m["channel"]["alternatives"][0]["transcript"] for m in received.finals).strip()


async def live_answers(url: str, token: str, clips: Sequence[Clip], concurrency: int = 1) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def one(clip: Clip) -> str:
            async with gate:
                return await live_answer(session, url, token, clip)
        return list(await asyncio.gather(*(one(c) for c in clips)))
