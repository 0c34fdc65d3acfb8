"""OpenAI's stream=true and server_vad chunking on the real model and real speech (tiny.en: fast enough)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from tests.helpers import TOKEN, joined_with_gaps, manifest, wer
from tests.live.test_live import pcm16_wav

pytestmark = pytest.mark.model
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NAMES = ["1089-134686-0000", "1089-134686-0005", "1089-134686-0009", "1089-134686-0011", "1089-134686-0018",
         "1089-134686-0020", "1089-134686-0023"]  # 89 s of speech: at least three windows
GAP_S = 2.0


def clips_upload() -> tuple[bytes, str]:
    clips = [manifest()[f"en/librispeech/{n}.flac"] for n in NAMES]
    joined, _ = joined_with_gaps(clips, GAP_S)
    return pcm16_wav(joined), " ".join(c.transcript for c in clips)


def form(data: bytes, **fields: str) -> aiohttp.FormData:
    out = aiohttp.FormData()
    out.add_field("file", data, filename="a.wav", content_type="audio/wav")
    out.add_field("model", "whisper-1")
    for name, value in fields.items():
        out.add_field(name, value)
    return out


async def test_stream_sends_text_before_the_end_and_the_same_text(make_client: Any, fw_tiny: Any) -> None:
    data, reference = clips_upload()
    client = await make_client(fw_tiny, asr={"model": "tiny.en"})
    plain = await (await client.post("/v1/audio/transcriptions", data=form(data), headers=BEARER)).json()
    started = time.monotonic()
    resp = await client.post("/v1/audio/transcriptions", data=form(data, stream="true"), headers=BEARER)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            arrivals.append((time.monotonic() - started, json.loads(line[6:])))
    events = [e for _, e in arrivals]
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1) and len(events) >= 3
    done = events[-1]
    assert done["type"] == "transcript.text.done" and "".join(e["delta"] for e in events[:-1]) == done["text"]
    # The same words as without streaming. Not always the same characters: the first window is decoded alone
    # for the first delta's sake, and the batched decoder's output depends a little on the batch (a comma
    # was seen to differ), as it does when other uploads share the batch.
    assert wer(plain["text"], done["text"]) <= 0.01, (plain["text"], done["text"])
    assert wer(reference, done["text"]) <= 0.15, done["text"]
    first, last = arrivals[0][0], arrivals[-1][0]
    print(f"first delta {first:.2f} s, done {last:.2f} s")
    assert first < last  # text came before the end (timing targets are in bench/bench_stream.py)


class Recording:
    """The real engine, recording the audio of every window it decodes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.windows: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode_windows(self, requests: Any) -> Any:
        self.windows += [len(r.audio) for r in requests]
        return self.inner.decode_windows(requests)


async def test_server_vad_silence_duration_keeps_shorter_pauses_in(make_client: Any, fw_tiny: Any) -> None:
    """Clips 2 s apart (Silero's pieces: 1.7 s apart): by default the pauses are cut out of the windows; with
    silence_duration_ms=3000 they are not cuts any more, so the windows hold them; the words are as right."""
    data, reference = clips_upload()
    engine = Recording(fw_tiny)
    client = await make_client(engine, asr={"model": "tiny.en"})
    decoded, texts = {}, {}
    for name, fields in (("default", {}), ("server_vad", {"chunking_strategy": json.dumps(
            {"type": "server_vad", "silence_duration_ms": 3000, "prefix_padding_ms": 300, "threshold": 0.5})})):
        engine.windows.clear()
        resp = await client.post("/v1/audio/transcriptions", headers=BEARER, data=form(data, **fields))
        texts[name] = (await resp.json())["text"]
        decoded[name] = sum(engine.windows) / 16000
    print({k: (round(decoded[k], 1), round(wer(reference, texts[k]), 3)) for k in texts})
    # Speech joined across pauses of 1.7 s, as far as 30 s windows allow: at least two pauses kept in.
    assert decoded["server_vad"] >= decoded["default"] + 2 * 1.5
    assert wer(reference, texts["server_vad"]) <= wer(reference, texts["default"]) + 0.02
