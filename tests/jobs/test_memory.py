"""A job's audio counts in the one memory budget (limits.max_held_bytes), as an upload's does: its file's bytes
and its decoded audio are reserved before they are allocated, and over the budget the job waits (stays queued
while the budget is full, then waits for room to decode) instead of failing. Fake engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stt.http.audio_budget import AUDIO_BUDGET
from stt.memory_budget import MiB
from tests.helpers import TOKEN, FakeEngine, tone, wav
from tests.jobs.test_api import AUTH, submit, wait_for

SECONDS = 10.0
DECODED = int(SECONDS * 16000 * 4)  # float32 at 16 kHz: 640 kB


async def status(client: Any, job_id: str) -> dict[str, Any]:
    return await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()


async def test_a_job_waits_for_room_in_the_memory_budget_and_is_counted(make_client: Any, tmp_path: Path) -> None:
    client = await make_client(FakeEngine(), http={"allowed_tokens": [TOKEN]}, jobs={"dir": str(tmp_path / "jobs")},
                               limits={"max_held_bytes": 2 * MiB})
    memory = client.server.app[AUDIO_BUDGET].memory
    other = memory.hold()
    # Another request holds a bit over half the budget: room for the job's upload (its body as read: 0.8 MiB at
    # most) but not for its file's bytes and decoded audio together (0.3 + 0.6 MiB).
    other.take(MiB + 64 * 1024)
    job_id = (await (await submit(client, wav(tone(440.0, SECONDS, 16000)))).json())["id"]
    await asyncio.sleep(1.5)
    waiting = await status(client, job_id)
    assert waiting["status"] in ("queued", "processing") and waiting["progress"]["done_seconds"] == 0.0, waiting
    assert memory.peak <= memory.max_bytes  # nothing was held over the budget meanwhile
    other.take(memory.max_bytes - memory.held)  # the budget full: the job is not refused for it either
    await asyncio.sleep(0.5)
    assert (await status(client, job_id))["status"] in ("queued", "processing")

    other.close()  # the other request ends: the job runs, its audio reserved while it is held
    done = await wait_for(client, job_id)
    assert done["status"] == "completed", done
    assert memory.peak >= DECODED  # the decoded audio was counted
    assert memory.held == 0  # and all of it given back


async def test_a_job_alone_runs_over_a_small_budget(make_client: Any, tmp_path: Path) -> None:
    client = await make_client(FakeEngine(), http={"allowed_tokens": [TOKEN]}, jobs={"dir": str(tmp_path / "jobs")},
                               limits={"max_held_bytes": 64 * 1024})
    job_id = (await (await submit(client, wav(tone(440.0, SECONDS, 16000)))).json())["id"]
    done = await wait_for(client, job_id)
    assert done["status"] == "completed", done
    memory = client.server.app[AUDIO_BUDGET].memory
    # Its decoded audio and its windows in flight were held at once (the upload alone peaks at 0.8 MiB).
    assert memory.peak >= 2 * DECODED and memory.held == 0
