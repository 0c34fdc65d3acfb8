"""Graceful shutdown of a real ``python server.py`` (tiny.en): on SIGTERM/SIGINT it stops accepting, answers
every accepted request, and exits 0; past limits.shutdown_timeout_seconds it gives up and exits 1. Also the
production server's handling of a client that hangs up while queued."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import rawhttp
from tests.helpers import TOKEN, manifest, wer
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.model
AUTH = {"Authorization": f"Token {TOKEN}"}
ASR = {"model": "tiny.en", "threads": 2, "beam_size": 1}
SHORT_CLIPS = ["en/librispeech/1089-134686-0014.flac", "en/librispeech/1089-134686-0003.flac",
               "en/librispeech/1089-134686-0030.flac", "en/librispeech/1089-134686-0036.flac"]
MEDIUM_CLIPS = ["en/librispeech/1089-134686-0018.flac", "en/librispeech/1089-134686-0020.flac"]


def start_server(folder: Path, limits: dict[str, Any] | None = None) -> ServerProcess:
    return ServerProcess({"asr": ASR, "limits": limits or {}}, folder)


def health(server: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as resp:
        return json.loads(resp.read())


def exit_code(server: ServerProcess, timeout: float) -> int:
    assert server.proc is not None
    return server.proc.wait(timeout)


async def _wait_accepted(server: ServerProcess, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        health_now = await asyncio.to_thread(health, server)
        if health_now["in_flight"] == count:  # requests, not scheduler jobs: an upload is several jobs
            return
        assert time.monotonic() < deadline, f"only {health_now} of {count} accepted"
        await asyncio.sleep(0.05)


async def _connection_refused(url: str, within: float = 5.0) -> bool:
    """True once a new connection is refused; pings answered before the signal took effect are fine."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                # A connection accepted just before the socket closed is never served: give up on it (the
                # timeout) and try a new one, which must then be refused.
                async with session.get(url, headers={**AUTH, "Connection": "close"},
                                       timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                    await resp.read()
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                continue
            except aiohttp.ClientConnectionError:
                return True
            await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_with_8_requests_in_flight_answers_all_then_exits_0(tmp_path: Path, sig: int) -> None:
    # 16 s clips: uploads are decoded in shared batches, and 8 short clips could all be answered before the
    # test sees the listening socket close, leaving nothing in flight to prove the drain with.
    clips = [manifest()[MEDIUM_CLIPS[i % len(MEDIUM_CLIPS)]] for i in range(8)]
    with start_server(tmp_path, {"shutdown_timeout_seconds": 60}) as server:
        async with aiohttp.ClientSession() as session:

            async def transcribe(body: bytes) -> tuple[int, dict]:
                async with session.post(f"{server.url}/stt", data=body, headers=AUTH) as resp:
                    return resp.status, await resp.json()

            tasks = [asyncio.create_task(transcribe(c.path.read_bytes())) for c in clips]
            await _wait_accepted(server, 8)
            server.proc.send_signal(sig)
            refused = await _connection_refused(f"{server.url}/ping")
            pending_when_refused = sum(not t.done() for t in tasks)
            results = await asyncio.gather(*tasks)
        code = await asyncio.to_thread(exit_code, server, 60)
        log = "\n".join(server.lines)
    assert refused and pending_when_refused > 0, "new connections were accepted while requests were in flight"
    assert [status for status, _ in results] == [200] * 8, results
    for clip, (_, body) in zip(clips, results):
        assert wer(clip.transcript, body["text"]) < 0.35, (clip.file, body["text"])
    assert code == 0, log
    assert "finishing 8 accepted request(s)" in log
    assert "every accepted request was answered" in log


async def test_shutdown_timeout_bounds_the_wait_and_exits_1(tmp_path: Path) -> None:
    """Eight 29 s clips take far longer than the 1 s budget: the server gives up on time and says so."""
    body = manifest()["en/librispeech/1272-128104-0004-8k.wav"].path.read_bytes()
    with start_server(tmp_path, {"shutdown_timeout_seconds": 1}) as server:
        async with aiohttp.ClientSession() as session:

            async def transcribe() -> int | str:
                try:
                    async with session.post(f"{server.url}/stt", data=body, headers=AUTH) as resp:
                        return resp.status
                except aiohttp.ClientError as exc:
                    return type(exc).__name__

            tasks = [asyncio.create_task(transcribe()) for _ in range(8)]
            await _wait_accepted(server, 8)
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(exit_code, server, 30)
            elapsed = time.monotonic() - started
            outcomes = await asyncio.gather(*tasks)
        log = "\n".join(server.lines)
    assert code == 1, log
    assert elapsed < 6.0  # 2 x 1 s of aiohttp's handler wait, plus start-up of the exit; not 8 x 2 s of work
    assert "accepted request(s) not finished" in log
    assert outcomes.count(200) < 8


async def test_production_server_drops_a_queued_request_whose_client_hung_up(tmp_path: Path) -> None:
    """handler_cancellation is on in the real server (server_options), not only in aiohttp's test server."""
    long_body = manifest()["en/librispeech/1272-128104-0004-8k.wav"].path.read_bytes()
    short_body = manifest()[SHORT_CLIPS[0]].path.read_bytes()
    with start_server(tmp_path) as server:
        async with aiohttp.ClientSession() as session:
            # Sequential decoding (one long job): speech windows would finish before the test can look.
            busy = asyncio.create_task(session.post(f"{server.url}/stt?vad_filter=false", data=long_body,
                                                    headers=AUTH))
            await _wait_accepted(server, 1)
            reader, writer = await rawhttp.connect(server.port)
            writer.write(rawhttp.request_head("/stt", len(short_body)) + short_body)
            await writer.drain()
            await _wait_accepted(server, 2)
            await rawhttp.hang_up(writer)
            await asyncio.sleep(0.5)
            now = await asyncio.to_thread(health, server)
            assert (now["queued"], now["running"]) == (0, 1)  # gone from the queue while the engine works
            resp = await busy
            assert resp.status == 200
        await asyncio.sleep(0.3)
        log = "\n".join(server.lines)
    assert log.count("POST /stt 200") == 1
    assert log.count("POST /stt 499") == 1
    assert log.count("Processing audio") == 1  # faster-whisper ran once: the dropped request never reached it
