"""Live interims on their idle-class copy of the model (asr.idle_interims, stt/inference/pass_batcher.py): loaded by
the first interim, its threads in Linux's SCHED_IDLE class, decoding exactly as the shared model does."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.factory import load_engine
from stt.engines.lowered import lowered_copy
from stt.engines.windows import WindowRequest
from stt.http.app import create_app
from tests.conftest import AUTH, make_settings
from tests.helpers import AUDIO_DIR, wer
from tests.live_helpers import pcm16, stream

pytestmark = [pytest.mark.model,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")]
CLIP = AUDIO_DIR / "en" / "librispeech" / "1089-134686-0000.flac"
URL = "/v1/listen?encoding=linear16&sample_rate=16000&interim_results=true"
SCHED_IDLE = 5  # Linux's scheduling policy, as /proc/<pid>/task/<tid>/stat numbers it


def idle_threads() -> set[int]:
    """Threads of this process in the SCHED_IDLE class at nice 0 (the jobs' copy runs at nice 10 and over)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        if int(fields[38]) == SCHED_IDLE and int(fields[16]) == 0:  # stat's fields 41 (policy) and 19 (nice)
            found.add(int(tid))
    return found


def test_the_copy_decodes_every_window_as_the_shared_model(fw_base: Any) -> None:
    asr = make_settings(asr={"model": "base", "threads": 2}).asr
    copy = lowered_copy(lambda: load_engine(dataclasses.replace(asr, workers=1, reserved_workers=0)), 0, True,
                        "test")
    try:
        audio = decode_audio(CLIP.read_bytes())
        requests = [WindowRequest(audio[:int(s * SAMPLE_RATE)], "en", prompt, 1)
                    for s, prompt in ((2.5, None), (6.0, "Stew."), (10.4, None))]
        for request in requests:
            mine, theirs = copy.decode_windows([request])[0], fw_base.decode_windows([request])[0]
            assert (mine.text, mine.words) == (theirs.text, theirs.words)
    finally:
        copy.close()


async def test_a_stream_loads_the_idle_copy_and_transcribes(aiohttp_server: Any) -> None:
    before = idle_threads()
    app = create_app(make_settings(asr={"model": "base", "threads": 2}))
    server = await aiohttp_server(app)
    assert not idle_threads() - before  # no stream yet: no second model
    audio = decode_audio(CLIP.read_bytes())
    data = pcm16(audio) + b"\0\0" * SAMPLE_RATE
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{server.port}{URL}", headers=AUTH) as ws:
            got = await stream(ws, data, speed=2.0)
    idle = len(idle_threads() - before)
    await server.close()
    assert got.close_code == 1000 and got.interims
    assert wer("He hoped there would be stew for dinner, turnips and carrots and bruised potatoes and fat "
               "mutton pieces to be ladled out in thick peppered flour fattened sauce.", got.final_text) <= 0.15
    assert idle >= 2, idle  # the copy's engine thread and the thread it starts for its matrix work
