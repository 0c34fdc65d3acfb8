"""Concurrent live streams share batched decoding passes: nothing one stream says may be lost to another.

Regression for issue 8: when the streams' previous-text prompts differed in length, CTranslate2 refused the
whole batch ("<|startoftranscript|> token to be at the same position in all batches") and every stream in it
lost that pass; utterances whose final pass failed never became final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.windows import WindowRequest
from tests.conftest import AUTH
from tests.helpers import manifest, wer
from tests.live_helpers import pcm16, stream
from tests.live.test_live import pcm16_wav

PCM = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1"
# Short and long utterances mixed, so the streams' prompts (their earlier finals) differ in length.
CLIPS = ["1089-134686-0001", "1089-134686-0005", "1089-134686-0030", "1089-134686-0000",
         "1089-134686-0003", "1089-134686-0009", "1089-134686-0036", "1089-134686-0014"]
GAP_S = 1.0  # silence between utterances: each clip is one utterance of known boundaries


def _stream_audio(index: int, count: int) -> tuple[np.ndarray, str]:
    """Stream ``index`` of ``count``: three different clips joined with GAP_S of silence, and its reference."""
    clips = [manifest()[f"en/librispeech/{CLIPS[(index + k * count) % len(CLIPS)]}.flac"] for k in range(3)]
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts = [p for c in clips for p in (decode_audio(c.path.read_bytes()), gap)]
    return np.concatenate(parts), " ".join(c.transcript for c in clips)


@pytest.mark.model
def test_windows_with_prompts_of_different_lengths_decode_in_one_batch(fw_base: Any) -> None:
    clips = manifest()
    a = decode_audio(clips["en/librispeech/1089-134686-0001.flac"].path.read_bytes())
    b = decode_audio(clips["en/librispeech/1089-134686-0030.flac"].path.read_bytes())
    requests = [WindowRequest(a, "en", None), WindowRequest(b, "en", "He hoped there would be stew for dinner."),
                WindowRequest(a, "en", "Stew."), WindowRequest(b, "en", None)]
    results = fw_base.decode_windows(requests)
    # Each window as it decodes alone: a batch of other prompts changes nothing. The WER is pooled, because the
    # engine itself hears 0001 as "Stuffed into you" (faster-whisper's own transcribe too): 2 of its 8 words.
    assert [r.text for r in results] == [fw_base.decode_windows([request])[0].text for request in requests]
    references = [clips[f"en/librispeech/1089-134686-{n}.flac"].transcript for n in ("0001", "0030")] * 2
    assert wer(references, [r.text for r in results]) <= 0.2, [r.text for r in results]


@pytest.mark.model
@pytest.mark.parametrize("count", [2, 4])
async def test_concurrent_streams_lose_no_words(make_client: Any, fw_base: Any, count: int,
                                                caplog: pytest.LogCaptureFixture) -> None:
    client = await make_client(fw_base)
    streams = [_stream_audio(i, count) for i in range(count)]
    caplog.set_level(logging.WARNING, logger="stt")
    sockets = [await client.ws_connect(PCM, headers=AUTH) for _ in streams]
    received = await asyncio.gather(*(stream(ws, pcm16(audio), speed=1.0)
                                      for ws, (audio, _) in zip(sockets, streams)))
    failures = [r.getMessage() for r in caplog.records if "pass failed" in r.getMessage()]
    assert not failures, failures
    assert all(got.close_code == 1000 for got in received)
    alone = [(await (await client.post("/stt", data=pcm16_wav(audio), headers=AUTH)).json())["text"]
             for audio, _ in streams]
    references = [reference for _, reference in streams]
    # Pooled over the streams: one word is ~1 point, not ~3 as it would be per stream.
    live_wer, alone_wer = wer(references, [got.final_text for got in received]), wer(references, alone)
    print(f"{count} streams: live WER {live_wer:.3f}, same audio as one request {alone_wer:.3f}")
    assert live_wer <= alone_wer + 0.03, [got.final_text for got in received]


@pytest.mark.model
def test_the_reserved_replica_decodes_beside_another_call_as_it_would_alone(fw_base: Any) -> None:
    """Two calls at once on the CTranslate2 replicas (a long upload's window and a live pass) give exactly
    what each gives alone: the replicas share weights, not state."""
    clips = manifest()
    long = decode_audio(clips["en/librispeech/1089-134686-0000.flac"].path.read_bytes())
    short = decode_audio(clips["en/librispeech/1089-134686-0030.flac"].path.read_bytes())
    upload_window, live_pass = WindowRequest(long, "en", None, 5), WindowRequest(short, "en", "Stew.", 1)
    alone = [fw_base.decode_windows([upload_window])[0], fw_base.decode_windows([live_pass])[0]]
    assert fw_base.parallel_calls >= 2  # asr.workers 1 + asr.reserved_workers 1
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda r: fw_base.decode_windows([r])[0], [upload_window, live_pass]))
    assert [r.text for r in together] == [r.text for r in alone]
    assert [[w.word for w in r.words] for r in together] == [[w.word for w in r.words] for r in alone]


@pytest.mark.model
async def test_a_live_stream_beside_a_long_upload_loses_nothing(make_client: Any, fw_base: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The long upload's jobs hold the worker, the stream's passes run on the reserved one: every utterance
    becomes final, with the words it has alone, while the upload is still being transcribed."""
    client = await make_client(fw_base)
    caplog.set_level(logging.WARNING, logger="stt")
    chapter = manifest()["long/1089-134686_full_chapter.flac"]
    audio, reference = _stream_audio(0, 1)
    upload = asyncio.create_task(client.post("/stt", data=chapter.path.read_bytes(), headers=AUTH))
    answered: list[float] = []
    upload.add_done_callback(lambda _: answered.append(time.monotonic()))
    await asyncio.sleep(1.0)
    ws = await client.ws_connect(PCM, headers=AUTH)
    started = time.monotonic()
    got = await stream(ws, pcm16(audio), speed=1.0)
    answer = await (await upload).json()
    finals = [started + t for t, m in got.messages if m.get("type") == "Results" and m.get("is_final")]
    assert finals and finals[0] < answered[0]  # the first utterance was final while the upload still ran
    failures = [r.getMessage() for r in caplog.records if "pass failed" in r.getMessage()]
    assert not failures and got.close_code == 1000
    assert wer(reference, got.final_text) <= 0.08, got.final_text
    assert wer(chapter.transcript, answer["text"]) <= 0.05
