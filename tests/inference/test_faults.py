"""Faults: an engine that raises (500 JSON, the next request works), clients that hang up mid-upload,
mid-queue (their work never runs) and mid-inference (the server stays healthy)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from stt.engines.base import Engine
from stt.engines.faults import FaultyEngine
from stt.http.keys import SCHEDULER
from tests import rawhttp
from tests.bad_inputs import tone, wav_bytes
from tests.conftest import AUTH
from tests.helpers import FakeEngine, manifest, wer


async def _wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_engine_fault_gives_500_json_and_the_next_request_works(make_client: Any) -> None:
    engine = FaultyEngine(FakeEngine())
    client = await make_client(engine)
    engine.fail_next()
    failed = await client.post("/stt", data=wav_bytes(tone()), headers=AUTH)
    assert failed.status == 500
    body = await failed.json()
    assert body == {"status": "failed", "message": "Transcription failed: InjectedFault", "code": "engine_error"}
    ok = await client.post("/stt", data=wav_bytes(tone()), headers=AUTH)
    assert ok.status == 200 and (await ok.json())["text"] == "hello world"
    # The failed upload stopped at its first model call (its language detection); the next one made two
    # (detection, then its window).
    assert engine.calls == 3
    assert client.app[SCHEDULER].running == 0


@pytest.mark.model
async def test_real_model_fault_then_real_transcript(make_client: Any, fw_tiny: Engine) -> None:
    clip = manifest()["en/librispeech/1089-134686-0014.flac"]
    engine = FaultyEngine(fw_tiny)
    client = await make_client(engine, asr={"model": "tiny.en"})
    engine.fail_next(2)
    statuses = [(await client.post("/stt", data=clip.path.read_bytes(), headers=AUTH)).status for _ in range(2)]
    assert statuses == [500, 500]
    ok = await client.post("/stt", data=clip.path.read_bytes(), headers=AUTH)
    assert ok.status == 200
    assert wer(clip.transcript, (await ok.json())["text"]) < 0.3
    assert engine.calls == 3


async def test_client_gone_mid_upload_leaves_nothing_behind(make_client: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stt.access")
    engine = FakeEngine()
    client = await make_client(engine)
    body = wav_bytes(tone(5.0))
    reader, writer = await rawhttp.connect(client.server.port)
    writer.write(rawhttp.request_head("/stt", len(body), extra={"X-Request-Id": "gone-mid-upload"})
                 + body[: len(body) // 3])
    await writer.drain()
    await asyncio.sleep(0.2)
    await rawhttp.hang_up(writer)
    await _wait_until(lambda: any("gone-mid-upload" in r.getMessage() for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if "gone-mid-upload" in r.getMessage())
    assert " 499 " in line  # logged as "client closed", not as a server error
    assert engine.calls == 0
    assert (await client.post("/stt", data=body, headers=AUTH)).status == 200


async def test_client_gone_while_queued_is_removed_and_its_work_never_runs(make_client: Any) -> None:
    engine = FakeEngine(delay=1.0)
    client = await make_client(engine)
    scheduler = client.app[SCHEDULER]
    body = wav_bytes(tone())
    first = asyncio.create_task(client.post("/stt", data=body, headers=AUTH))
    await _wait_until(lambda: scheduler.running == 1)
    reader, writer = await rawhttp.connect(client.server.port)
    writer.write(rawhttp.request_head("/stt", len(body)) + body)
    await writer.drain()
    await _wait_until(lambda: scheduler.waiting == 1)
    await rawhttp.hang_up(writer)
    await _wait_until(lambda: scheduler.waiting == 0, timeout=1.0)  # left the queue before the engine freed
    assert scheduler.running == 1
    assert (await first).status == 200
    await asyncio.sleep(0.3)
    assert engine.calls == 1  # the hung-up request was never transcribed
    assert (await client.post("/stt", data=body, headers=AUTH)).status == 200
    assert engine.calls == 2


async def test_client_gone_mid_inference_server_stays_healthy(make_client: Any) -> None:
    engine = FakeEngine(delay=0.8)
    client = await make_client(engine)
    scheduler = client.app[SCHEDULER]
    body = wav_bytes(tone())
    reader, writer = await rawhttp.connect(client.server.port)
    writer.write(rawhttp.request_head("/stt", len(body)) + body)
    await writer.drain()
    await asyncio.to_thread(engine.running.wait, 5)
    await rawhttp.hang_up(writer)
    started = time.monotonic()
    ping = await client.get("/ping", headers=AUTH)
    assert ping.status == 200 and time.monotonic() - started < 1.0  # the loop is free while the model works
    # The running job cannot be interrupted: its worker is released when it finishes, not before.
    assert scheduler.running == 1
    await _wait_until(lambda: scheduler.running == 0)
    assert (await client.post("/stt", data=body, headers=AUTH)).status == 200
    assert engine.calls == 2


class _BatchingEngine(FakeEngine):
    """A fake whose batched decoder is told apart from the per-window fallback."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def decode_windows(self, requests: Any) -> Any:
        from stt.engines.base import WindowResult

        self.batches.append(len(requests))
        return [WindowResult("batched", (), "en") for _ in requests]


def test_faulty_engine_forwards_batched_window_decoding_and_injects_faults_there() -> None:
    from stt.engines.base import WindowRequest
    from stt.engines.faults import InjectedFault

    inner = _BatchingEngine()
    engine = FaultyEngine(inner)
    windows = [WindowRequest(tone(1.0)) for _ in range(3)]
    assert [r.text for r in engine.decode_windows(windows)] == ["batched"] * 3
    assert inner.batches == [3] and inner.calls == 0  # the inner batched decoder ran, not a fallback
    engine.fail_next()
    with pytest.raises(InjectedFault):
        engine.decode_windows(windows)
    assert inner.batches == [3]
