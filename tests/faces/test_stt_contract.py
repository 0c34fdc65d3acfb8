"""POST /stt's HTTP contract on the real app with a fake engine: shapes, statuses, limits, concurrency."""

import asyncio
import time

import aiohttp
import numpy as np

from tests.conftest import AUTH
from tests.helpers import FakeEngine, tone, wav


async def test_raw_body_gives_the_documented_shape(client, wav_bytes) -> None:
    resp = await client.post("/stt", data=wav_bytes, headers={**AUTH, "Content-Type": "audio/wav"})
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"text", "proc_duration", "status", "language", "duration"}
    assert body["text"] == "hello world" and body["status"] == "success" and body["language"] == "en"
    assert body["duration"] == 1.0 and body["proc_duration"] >= 0
    assert resp.headers["X-Request-Id"]


async def test_multipart_file_field(client, wav_bytes) -> None:
    form = aiohttp.FormData()
    form.add_field("file", wav_bytes, filename="a.wav", content_type="audio/wav")
    resp = await client.post("/stt", data=form, headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["text"] == "hello world"


async def test_multipart_without_file_is_400(client) -> None:
    with aiohttp.MultipartWriter("form-data") as form:
        form.append("en").set_content_disposition("form-data", name="language")
    resp = await client.post("/stt", data=form, headers=AUTH)
    assert resp.status == 400
    assert "file" in (await resp.json())["message"]


async def test_bad_audio_is_400_json(client, wav_bytes) -> None:
    for data in (b"", b"x", b"plain text\n" * 50, wav_bytes[:40],
                 bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))):
        resp = await client.post("/stt", data=data, headers=AUTH)
        assert resp.status == 400, data[:20]
        body = await resp.json()
        assert body["status"] == "failed" and body["message"]


async def test_body_over_limit_is_413(make_client, fake_engine) -> None:
    client = await make_client(fake_engine, http={"request_max_size": 10_000})
    big = wav(tone(440, 2.0, 16000))  # 64 kB
    resp = await client.post("/stt", data=big, headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["status"] == "failed"

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    resp = await client.post("/stt", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert fake_engine.calls == 0


async def test_engine_failure_is_500_and_the_next_request_works(client, fake_engine, wav_bytes) -> None:
    fake_engine.fail_next = True
    resp = await client.post("/stt", data=wav_bytes, headers=AUTH)
    assert resp.status == 500
    body = await resp.json()
    assert body["status"] == "failed" and "injected" not in body["message"]
    resp = await client.post("/stt", data=wav_bytes, headers=AUTH)
    assert resp.status == 200


async def test_unknown_route_is_json_404(client) -> None:
    resp = await client.get("/nope", headers=AUTH)
    assert resp.status == 404
    assert (await resp.json())["status"] == "failed"


async def test_ping_answers_while_the_engine_works(make_client, wav_bytes) -> None:
    engine = FakeEngine(delay=2.0)
    client = await make_client(engine)
    job = asyncio.create_task(client.post("/stt", data=wav_bytes, headers=AUTH))
    await asyncio.to_thread(engine.running.wait, 5)
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        resp = await client.get("/ping", headers=AUTH)
        latencies.append(time.perf_counter() - started)
        assert resp.status == 200
    assert not job.done()  # the pings really overlapped the transcription
    assert max(latencies) < 0.5
    assert (await job).status == 200


async def test_a_body_that_cannot_be_read_is_400(client) -> None:
    from tests.rawhttp import connect, read_response, request_head

    reader, writer = await connect(client.port)
    # A body declared gzip that is not: aiohttp fails while reading it (RequestPayloadError).
    writer.write(request_head("/stt", 64, extra={"Content-Encoding": "gzip"}) + b"\x00" * 64)
    await writer.drain()
    status, _, body = await read_response(reader)
    writer.close()
    assert status == 400 and body["status"] == "failed"
