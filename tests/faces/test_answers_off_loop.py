"""An hour's transcript is shaped and serialised off the event loop (stt/http/answers.py): while a long answer
with word timings is built, the loop keeps serving (issue 19: /ping max <= 100 ms during any attack; an upload
of 1 h of speech bursts with diarize=true and verbose_json stalled it 135 ms). Fake engine: 10 min of audio in
20 windows of 500 words, 10,000 words: as many as an hour of speech."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import numpy as np
import pytest

from stt.engines.base import Segment, TranscribeOptions, Transcript, Word
from tests.helpers import TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}
WORDS = 500  # a window's: 10,000 in all
SECONDS = 600.0
ROUTES = [("/stt", {"output": "verbose_json", "word_timestamps": "true"}),
          ("/stt", {"output": "srt"}),
          ("/v1/audio/transcriptions", {"model": "whisper-1", "response_format": "verbose_json",
                                        "timestamp_granularities[]": "word"}),
          ("/v1/listen", {"punctuate": "true"})]


class WordyEngine(FakeEngine):
    """Answers every window with 500 words (20 times a real window's), in 12-word segments."""

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        seconds = len(audio) / 16000
        step = seconds / WORDS
        words = [Word(i * step, (i + 0.8) * step, " word", 0.9) for i in range(WORDS)]
        segments = tuple(Segment(n, words[i].start, words[min(i + 11, WORDS - 1)].end,
                                 " ".join("word" for _ in words[i:i + 12]), tuple(words[i:i + 12]))
                         for n, i in enumerate(range(0, WORDS, 12)))
        return Transcript(" ".join(s.text for s in segments), segments, options.language or "en", 0.99, seconds)


async def worst_stall(during: Any) -> float:
    """The longest the event loop went without running a 5 ms timer while ``during`` ran."""
    worst, done = 0.0, asyncio.Event()

    async def watch() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.005)
            worst = max(worst, time.monotonic() - before - 0.005)

    watcher = asyncio.create_task(watch())
    try:
        await during
    finally:
        done.set()
        await watcher
    return worst


@pytest.mark.parametrize(("path", "params"), ROUTES, ids=[f"{p}?{'&'.join(q)}" for p, q in ROUTES])
async def test_a_long_answer_is_built_off_the_event_loop(make_client: Any, path: str, params: dict[str, str]) -> None:
    client = await make_client(WordyEngine(), http={"allowed_tokens": [TOKEN]})
    body = wav(tone(440.0, SECONDS, 16000))
    answers: list[int] = []

    async def request() -> None:
        async with client.post(path, params=params, data=body, headers=AUTH) as response:
            assert response.status == 200, await response.text()
            answers.append((await response.read()).count(b"word"))

    await request()  # warm: imports, the first thread of the pool
    # As server.py does at start (freeze_startup_heap): what lives as long as the process (here the test
    # session's own objects too) is out of the garbage collector's walk, or a full collection in the rendering
    # thread holds the GIL ~150 ms whatever the rendering does.
    gc.collect()
    gc.freeze()
    try:
        stall = await worst_stall(request())
    finally:
        gc.unfreeze()
    assert answers[-1] >= 20 * WORDS  # the answer really holds an hour's worth of words
    # Built on the loop, shaping and serialising 10,000 words stalled it ~0.2-0.3 s (verbose JSON with words).
    assert stall < 0.15, f"the event loop stalled {stall * 1000:.0f} ms"
