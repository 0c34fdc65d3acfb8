"""Limits and back-pressure: body size (413 before the body is read), audio length (413 without decoding a
zip bomb), a full queue (503 + Retry-After at once), a queue wait over the timeout (503)."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import pytest

from stt.audio import decode_audio
from stt.errors import TooLarge
from stt.http.keys import SCHEDULER
from tests import rawhttp
from tests.bad_inputs import silent_flac, tone, wav_bytes
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, FakeEngine

MiB = 1024 * 1024


async def test_body_over_limit_gets_413_before_the_body_is_sent(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"request_max_size": MiB})
    reader, writer = await rawhttp.connect(client.server.port)
    writer.write(rawhttp.request_head("/stt", 200 * MiB) + b"RIFF" + bytes(1024))
    await writer.drain()
    # Only 1 KiB of the declared 200 MiB was sent: the answer must come now, not after the body.
    status, headers, body = await rawhttp.read_response(reader, timeout=5)
    await rawhttp.hang_up(writer)
    assert status == 413
    assert body["status"] == "failed" and "limit" in body["message"]
    assert headers["x-request-id"]


async def test_chunked_body_over_limit_gets_413(make_client: Any) -> None:
    """No Content-Length to check up front: reading stops at the limit."""
    engine = FakeEngine()
    client = await make_client(engine, http={"request_max_size": MiB})

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield bytes(MiB // 2 + 1)

    resp = await client.post("/stt", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["status"] == "failed"
    assert engine.calls == 0


async def test_body_under_limit_is_accepted(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"request_max_size": MiB})
    resp = await client.post("/stt", data=wav_bytes(tone(10.0)), headers=AUTH)  # 320 kB
    assert resp.status == 200


def test_hours_of_silence_are_refused_from_the_header_without_decoding() -> None:
    bomb = silent_flac(3 * 3600)  # three hours, a few hundred kB
    assert len(bomb) < 512 * 1024
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(TooLarge, match="too long"):
            decode_audio(bomb, max_seconds=600)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5 * MiB  # three hours at 8 kHz would be 345 MB of float32


def test_many_channels_at_a_high_rate_cannot_make_decoding_explode() -> None:
    """Within the length limit, 32 channels at 192 kHz would cost 32x the decoding work of 96 kHz stereo:
    refused as too heavy (the budget is max_audio_seconds of 96 kHz stereo)."""
    import numpy as np

    wav = wav_bytes(np.zeros((19_200, 32), dtype=np.float32), rate=192_000)  # 0.1 s
    with pytest.raises(TooLarge, match="too large to decode"):
        decode_audio(wav, max_seconds=0.5)
    assert len(decode_audio(wav, max_seconds=10.0)) == 1600


def test_audio_longer_than_the_limit_is_refused_while_reading_when_the_header_has_no_length() -> None:
    """A WAV streamed by ffmpeg to a pipe declares no length: the limit is enforced while reading."""
    from tests.bad_inputs import wav_header

    body = wav_bytes(tone(5.0))
    streamed = wav_header(rate=16000, channels=1, data_size=0xFFFFFFFF - 36) + body[44:]
    with pytest.raises(TooLarge, match="too long"):
        decode_audio(streamed, max_seconds=2.0)
    assert len(decode_audio(streamed, max_seconds=6.0)) == 5 * 16000


async def test_real_audio_over_max_audio_seconds_gets_413(make_client: Any) -> None:
    if not (AUDIO_DIR / "en" / "jfk.flac").is_file():
        pytest.skip("shared audio not found")
    engine = FakeEngine()
    client = await make_client(engine, limits={"max_audio_seconds": 5})
    resp = await client.post("/stt", data=(AUDIO_DIR / "en" / "jfk.flac").read_bytes(), headers=AUTH)
    assert resp.status == 413
    body = await resp.json()
    assert body["status"] == "failed" and "11 s" in body["message"] and "limit 5 s" in body["message"]
    assert engine.calls == 0


async def test_silence_bomb_over_http_gets_413(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine, limits={"max_audio_seconds": 600})
    resp = await client.post("/stt", data=silent_flac(4 * 3600), headers=AUTH)
    assert resp.status == 413
    assert engine.calls == 0


async def _post_wav(client: Any) -> Any:
    return await client.post("/stt", data=wav_bytes(tone(1.0)), headers=AUTH)


async def _wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_full_queue_gets_503_with_retry_after_at_once(make_client: Any) -> None:
    engine = FakeEngine(delay=1.5)
    client = await make_client(engine, limits={"max_queue": 1})
    scheduler = client.app[SCHEDULER]
    running = asyncio.create_task(_post_wav(client))
    await _wait_until(lambda: scheduler.running == 1)
    queued = asyncio.create_task(_post_wav(client))
    await _wait_until(lambda: scheduler.waiting == 1)
    started = time.monotonic()
    refused = await _post_wav(client)
    assert time.monotonic() - started < 0.5  # answered at once, not after the queue moved
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["status"] == "failed"
    # The accepted ones are not lost.
    assert [(await running).status, (await queued).status] == [200, 200]
    assert engine.calls == 2


async def test_queue_timeout_gets_503_and_its_job_never_runs(make_client: Any) -> None:
    engine = FakeEngine(delay=1.5)
    client = await make_client(engine, limits={"queue_timeout_seconds": 0.3})
    running = asyncio.create_task(_post_wav(client))
    await asyncio.to_thread(engine.running.wait, 5)
    started = time.monotonic()
    timed_out = await _post_wav(client)
    assert 0.25 < time.monotonic() - started < 1.2
    assert timed_out.status == 503
    assert "Retry-After" in timed_out.headers
    assert "waited" in (await timed_out.json())["message"]
    assert (await running).status == 200
    await asyncio.sleep(0.2)
    assert engine.calls == 1


# -- 1 (queue): requests in flight hold a bounded amount of decoded audio --------------------------------------

async def test_decoded_audio_held_by_requests_in_flight_is_bounded(make_client: Any) -> None:
    """Queued requests kept their decoded audio: 64 queued 4 h uploads could hold 59 GB."""
    engine = FakeEngine(delay=1.0)
    client = await make_client(engine, limits={"max_held_audio_seconds": 3})
    body = wav_bytes(tone(2.0))
    first = asyncio.create_task(client.post("/stt", data=body, headers=AUTH))
    await asyncio.to_thread(engine.running.wait, 5)  # the first one's 2 s are held while it runs
    second = await client.post("/stt", data=body, headers=AUTH)
    assert second.status == 503 and second.headers["Retry-After"]
    assert "audio in flight" in (await second.json())["message"]
    assert (await first).status == 200
    third = await client.post("/stt", data=body, headers=AUTH)  # released when the first one answered
    assert third.status == 200
    alone = await client.post("/stt", data=wav_bytes(tone(5.0)), headers=AUTH)  # over the bound, but alone
    assert alone.status == 200
