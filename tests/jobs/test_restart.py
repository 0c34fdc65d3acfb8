"""Restart safety on the real server and model: a server killed with SIGKILL in the middle of a job, started
again on the same jobs.dir, finishes the job (resuming from its last finished window) with the transcript an
uninterrupted run gives; a queued job stays queued; its callback is delivered once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stt.audio import SAMPLE_RATE, decode_audio
from stt.jobs import webhooks
from tests.helpers import AUDIO_DIR, TOKEN, wav
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.model
AUTH = {"Authorization": f"Token {TOKEN}"}
SECRET = "restart-secret"
CHAPTER = AUDIO_DIR / "long" / "1089-134686_full_chapter.flac"


def config(jobs_dir: Path) -> dict[str, Any]:
    # Windows decoded one per chunk (upload_batch_seconds 30): each is recorded as soon as it is done.
    return {"asr": {"model": "tiny.en", "threads": 2, "upload_batch_seconds": 30},
            "jobs": {"dir": str(jobs_dir), "concurrency": 1, "callback_allowed_hosts": ["127.0.0.1"],
                     "webhook_secret": SECRET}}


async def job(session: aiohttp.ClientSession, url: str, job_id: str) -> dict[str, Any]:
    async with session.get(f"{url}/v1/jobs/{job_id}", headers=AUTH) as response:
        assert response.status == 200
        return await response.json()


async def wait(session: aiohttp.ClientSession, url: str, job_id: str, until: Any, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = await job(session, url, job_id)
        if until(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def result(session: aiohttp.ClientSession, url: str, job_id: str) -> dict[str, Any]:
    async with session.get(f"{url}/v1/jobs/{job_id}/result?output=verbose_json", headers=AUTH) as response:
        assert response.status == 200
        body = await response.json()
    body.pop("proc_duration")
    return body


async def test_sigkill_mid_job_then_restart_gives_the_uninterrupted_transcript(tmp_path: Path) -> None:
    audio = wav(decode_audio(CHAPTER.read_bytes())[: 100 * SAMPLE_RATE])  # 100 s: four windows
    calls: list[tuple[dict[str, str], bytes, bool]] = []

    async def hook(request: web.Request) -> web.Response:
        # Verified on arrival, as a receiver does (the timestamp is checked against the clock: the other jobs
        # below take minutes on a loaded machine).
        body = await request.read()
        calls.append((dict(request.headers), body, webhooks.verify(SECRET, dict(request.headers), body)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    receiver = TestServer(app, host="127.0.0.1")
    await receiver.start_server()
    server = ServerProcess(config(tmp_path / "jobs"), tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.to_thread(server.start)
            params = {"callback_url": str(receiver.make_url("/hook")), "language": "en"}
            async with session.post(f"{server.url}/v1/jobs", params=params, data=audio, headers=AUTH) as r:
                assert r.status == 202
                first = (await r.json())["id"]
            async with session.post(f"{server.url}/v1/jobs", data=audio, headers=AUTH) as r:
                queued = (await r.json())["id"]
            # Killed once at least one window is recorded and before the job ends.
            body = await wait(session, server.url, first, lambda b: b["progress"]["done_seconds"] > 0
                              or b["status"] == "completed")
            assert body["status"] == "processing", "the job ended before the server could be killed"
            assert server.terminate(signal.SIGKILL) == -signal.SIGKILL
            server = ServerProcess(config(tmp_path / "jobs"), tmp_path)
            await asyncio.to_thread(server.start)
            assert (await job(session, server.url, queued))["status"] == "queued"
            done = await wait(session, server.url, first, lambda b: b["status"] in ("completed", "failed"))
            assert done["status"] == "completed", done
            assert done["progress"]["done_seconds"] == done["progress"]["total_seconds"] == 100.0
            assert any("resuming: " in line for line in server.lines), server.lines[-20:]
            resumed = await result(session, server.url, first)
            await wait(session, server.url, queued, lambda b: b["status"] == "completed")
            # The same audio, uninterrupted, on the same server.
            async with session.post(f"{server.url}/v1/jobs", params={"language": "en"}, data=audio,
                                    headers=AUTH) as r:
                fresh = (await r.json())["id"]
            await wait(session, server.url, fresh, lambda b: b["status"] == "completed")
            assert resumed == await result(session, server.url, fresh)
            assert resumed == await result(session, server.url, queued)
            assert len(resumed["text"].split()) > 200
            callback = await wait(session, server.url, first, lambda b: b["callback"]["state"] == "delivered", 30)
    finally:
        server.stop()
        await receiver.close()
    assert len(calls) == 1 and [a["status"] for a in callback["callback"]["attempts"]] == [200]
    headers, raw, verified = calls[0]
    assert verified
    assert json.loads(raw)["status"] == "completed"


async def test_a_job_gives_the_transcript_of_a_synchronous_upload(make_client: Any, fw_tiny: Any,
                                                                  tmp_path: Path) -> None:
    """The same windows, decoded at another priority: the same words and timings as POST /stt."""
    from tests.jobs.test_api import wait_for

    client = await make_client(fw_tiny, jobs={"dir": str(tmp_path / "jobs")})
    data = (AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac").read_bytes()
    query = "?output=verbose_json&word_timestamps=true"
    upload = await (await client.post(f"/stt{query}", data=data, headers=AUTH)).json()
    job_id = (await (await client.post(f"/v1/jobs{query}", data=data, headers=AUTH)).json())["id"]
    assert (await wait_for(client, job_id, timeout=120))["status"] == "completed"
    result = await (await client.get(f"/v1/jobs/{job_id}/result", headers=AUTH)).json()
    for body in (upload, result):
        body.pop("proc_duration")
    assert result == upload and "stew for dinner" in result["text"].lower()
