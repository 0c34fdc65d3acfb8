"""Jobs run on their own copy of the model, whose threads run at a lower OS priority (jobs.nice, and Linux's
SCHED_IDLE class with jobs.sched_idle): a live pass or an upload beside a job's window gets the cores first. The copy transcribes exactly as the shared model does."""

from __future__ import annotations

import asyncio
import collections
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stt.http.app import create_app
from tests.conftest import make_settings
from tests.helpers import AUDIO_DIR, TOKEN

pytestmark = pytest.mark.model
AUTH = {"Authorization": f"Token {TOKEN}"}
CLIP = AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac"


SCHED_OTHER, SCHED_IDLE = 0, 5  # Linux's scheduling policies, as /proc/<pid>/task/<tid>/stat numbers them


def threads_by_nice(policy: int | None = None) -> collections.Counter[int]:
    """Threads of this process by nice value (those of one scheduling policy, when given)."""
    counts: collections.Counter[int] = collections.Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        if policy is None or int(fields[38]) == policy:  # stat's fields 19 (nice) and 41 (policy)
            counts[int(fields[16])] += 1
    return counts


async def job_and_upload(aiohttp_server: Any, tmp_path: Path, nice: int, idle: bool) -> tuple[str, str, int]:
    """The clip as a job and as an upload, and the threads at nice 17 in the expected scheduling class the server
    started (no other test starts threads at that priority)."""
    policy = SCHED_IDLE if idle else SCHED_OTHER
    before = threads_by_nice(policy)[17]
    app = create_app(make_settings(asr={"model": "tiny.en", "threads": 2},
                                   jobs={"dir": str(tmp_path), "nice": nice, "sched_idle": idle}))
    server = await aiohttp_server(app)
    # The copy is loaded by the first job, not at start: a server sent no job holds no second model.
    assert threads_by_nice(policy)[17] == before
    client_url = f"http://127.0.0.1:{server.port}"
    data = CLIP.read_bytes()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(f"{client_url}/v1/jobs", data=data) as response:
            assert response.status == 202, await response.text()
            job_id = (await response.json())["id"]
        deadline = time.monotonic() + 120
        while True:
            async with http.get(f"{client_url}/v1/jobs/{job_id}") as response:
                status = (await response.json())["status"]
            if status in ("completed", "failed") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == "completed"
        niced = threads_by_nice(policy)[17] - before  # the copy's threads live as long as the server
        async with http.get(f"{client_url}/v1/jobs/{job_id}/result", params={"output": "text"}) as response:
            job_text = await response.text()
        async with http.post(f"{client_url}/stt", data=data, params={"output": "text"}) as response:
            upload_text = await response.text()
    await server.close()
    return job_text, upload_text, niced


@pytest.mark.parametrize("idle", [True, False], ids=["sched_idle", "nice_only"])
async def test_a_job_runs_on_threads_at_the_lower_priority_and_transcribes_as_an_upload(
        aiohttp_server: Any, tmp_path: Path, idle: bool) -> None:
    job_text, upload_text, niced = await job_and_upload(aiohttp_server, tmp_path, nice=17, idle=idle)
    assert "stew for dinner" in job_text.lower()
    assert job_text == upload_text
    # The copy's engine thread and the thread it started for its matrix work (2 threads per call).
    assert niced >= 2, niced

