"""Issue 19: diarization's working set counts in the one memory budget (limits.max_held_bytes). An upload with
``diarize=true`` reserves it with its other buffers before any work starts (over the budget: 503 + Retry-After,
as the others) and gives it back once its speakers are labelled; a job reserves it in the same wait for room as
its windows (it waits, never fails). Fake engine and a stand-in diarizer that records what was held while it
ran; the bound itself is checked against the real diarizer's peak RSS in test_diarization_bounds.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp

from stt.diarization.bounds import EMBED_BYTES, PER_STRETCH_BYTES, working_bytes
from stt.http.audio_budget import AUDIO_BUDGET
from stt.http.keys import TRANSCRIBER
from stt.memory_budget import MiB
from tests.helpers import TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}
SECONDS = 10.0
SAMPLES = int(SECONDS * 16000)
WORKING = working_bytes(SAMPLES)
UPLOAD = wav(tone(440.0, SECONDS, 16000))


class Recorder:
    """A stand-in diarizer (``Transcriber.diarizer.get``): everyone is speaker 0; records the budget's count
    while it runs."""

    def __init__(self, budget: Any) -> None:
        self.budget = budget
        self.held: list[int] = []

    def get(self) -> "Recorder":
        return self

    def label(self, transcript: Any, audio: Any, options: Any) -> Any:
        self.held.append(self.budget.held)
        return dataclasses.replace(transcript, segments=tuple(
            dataclasses.replace(s, speaker=0) for s in transcript.segments))


async def _client(make_client: Any, budget_bytes: int, **sections: Any) -> tuple[Any, Any, Recorder]:
    client = await make_client(FakeEngine(), limits={"max_held_bytes": budget_bytes}, **sections)
    memory = client.server.app[AUDIO_BUDGET].memory
    recorder = Recorder(memory)
    client.server.app[TRANSCRIBER].diarizer.get = recorder.get  # type: ignore[method-assign]
    return client, memory, recorder


def test_the_bound_covers_a_full_batch_and_the_stretches_an_upload_can_have() -> None:
    assert WORKING >= EMBED_BYTES  # one batch of 256 windows of 1.6 s through the LSTM, whatever the length
    hour = working_bytes(3600 * 16000)
    # A stretch at most every 6 frames (192 ms): 18,750 in an hour, each 4.5 KiB, on top of the fixed part.
    assert hour - WORKING >= (3600 * 1000 // 192 - 60) * PER_STRETCH_BYTES
    assert hour < EMBED_BYTES + 100 * MiB  # the part that grows is small: ~85 MiB an hour


async def test_a_diarized_upload_holds_the_working_set_while_it_is_labelled_and_gives_it_back(
        make_client: Any) -> None:
    client, memory, recorder = await _client(make_client, 4 << 30)
    resp = await client.post("/stt?diarize=true", data=UPLOAD, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert len(recorder.held) == 1
    assert recorder.held[0] >= WORKING + SAMPLES * 4  # the working set, beside the decoded audio
    assert memory.peak >= WORKING
    assert memory.held == 0  # all of it given back
    plain = await client.post("/stt", data=UPLOAD, headers=AUTH)  # without diarize nothing of it is reserved
    assert plain.status == 200 and memory.held == 0


async def test_a_diarized_upload_is_refused_503_when_the_working_set_does_not_fit(make_client: Any) -> None:
    client, memory, recorder = await _client(make_client, 256 * MiB)  # less than the working set
    other = memory.hold()
    other.take(16 * MiB)  # another request holds a little: this one is not alone
    plain = await client.post("/stt", data=UPLOAD, headers=AUTH)
    assert plain.status == 200  # the same upload without diarize fits
    refused = await client.post("/stt?diarize=true", data=UPLOAD, headers=AUTH)
    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    assert "memory budget" in (await refused.json())["message"]
    assert recorder.held == []  # refused before any work: no transcription, no diarization
    assert memory.held == 16 * MiB  # it kept nothing
    other.close()
    alone = await client.post("/stt?diarize=true", data=UPLOAD, headers=AUTH)
    assert alone.status == 200  # alone, it is always admitted
    assert memory.held == 0


async def test_a_streamed_diarized_upload_is_refused_before_the_stream_starts(make_client: Any) -> None:
    client, memory, recorder = await _client(make_client, 256 * MiB)
    other = memory.hold()
    other.take(16 * MiB)
    form = aiohttp.FormData()
    form.add_field("file", UPLOAD, filename="a.wav", content_type="audio/wav")
    form.add_field("model", "whisper-1")
    form.add_field("stream", "true")
    form.add_field("response_format", "diarized_json")
    resp = await client.post("/v1/audio/transcriptions", data=form, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    assert recorder.held == [] and memory.held == 16 * MiB
    other.close()


async def test_a_diarized_job_waits_for_room_for_its_working_set_then_gives_it_back(make_client: Any,
                                                                                      tmp_path: Path) -> None:
    client, memory, recorder = await _client(make_client, 512 * MiB, http={"allowed_tokens": [TOKEN]},
                                             jobs={"dir": str(tmp_path / "jobs")})
    other = memory.hold()
    other.take(256 * MiB)  # room for the job's audio, not for its working set as well
    resp = await client.post("/v1/jobs?diarize=true", data=UPLOAD, headers=AUTH)
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    await asyncio.sleep(1.5)
    body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
    assert body["status"] in ("queued", "processing") and body["progress"]["done_seconds"] == 0.0, body
    assert recorder.held == [] and memory.peak <= memory.max_bytes  # waiting: nothing over the budget
    other.close()
    for _ in range(200):
        body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
        if body["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "completed", body
    assert len(recorder.held) == 1 and recorder.held[0] >= WORKING + SAMPLES * 4
    assert memory.held == 0
