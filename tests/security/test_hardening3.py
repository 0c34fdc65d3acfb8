"""Issue 19, upload side: one memory budget reserved before allocation (P5), bounded whole-upload paths (P4),
form fields refused by size before decoding (P7), logs that cannot be forged (P8), parser failures as 400 (P10).

The memory bounds are measured: the budget's own peak in-process, and the RSS of a real server process
(/proc, sampled every 20 ms) in the tests marked ``model``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from stt.audio import decode_audio
from stt.engines.speech import SILENT_STRETCH_S, sound_stretches, whisper_speech
from stt.logs import make_handler, safe
from stt.memory_budget import MemoryBudget, OverBudget, default_max_held_bytes, machine_memory_bytes
from stt.settings import LoggingSettings
from tests.helpers import AUDIO_DIR, TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}
MiB = 1 << 20
SPEECH = "en/librispeech/1089-134686-0000.flac"  # 10.4 s, one sentence


def gzip_of_zeros(mib: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join([packer.compress(block) for _ in range(mib)] + [packer.flush()])


# -- the budget itself ----------------------------------------------------------------------------------------

def test_reservations_over_the_budget_fail_unless_the_holder_is_alone() -> None:
    budget = MemoryBudget(100)
    first, second = budget.hold(), budget.hold()
    first.take(150)  # alone: admitted over the budget (one request up to the request limits always runs)
    with pytest.raises(OverBudget):
        second.take(1)
    first.give(100)
    second.take(50)
    with pytest.raises(OverBudget):
        second.take(1)
    first.close()
    second.close()
    assert budget.held == 0 and budget.peak == 150


async def test_reserve_waits_for_room_and_times_out() -> None:
    budget = MemoryBudget(100)
    holder = budget.hold()
    holder.take(80)
    waiter = budget.hold()
    waiting = asyncio.create_task(waiter.reserve(50, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await asyncio.to_thread(holder.give, 40)  # released from another thread: the waiter is woken
    await asyncio.wait_for(waiting, 2)
    assert budget.held == 90
    with pytest.raises(OverBudget):
        await waiter.reserve(50, timeout=0.05)
    async with budget.reserving(5):
        assert budget.held == 95
    assert budget.held == 90


def test_the_default_budget_is_a_quarter_of_the_memory() -> None:
    assert default_max_held_bytes() == max(1 << 30, machine_memory_bytes() // 4)


# -- P5: bodies are reserved as they are read and inflated ----------------------------------------------------

async def test_concurrent_gzip_bombs_stay_within_the_budget_and_the_rest_get_503(make_client: Any) -> None:
    """16 bodies of 100 kB inflating to 40 MiB each (with a token): before, each was read, inflated and copied
    whole before any count (+4.28 GB for 16 of 100 MiB on a real server)."""
    client = await make_client(FakeEngine(), limits={"max_held_bytes": 128 * MiB})
    from stt.http.audio_budget import AUDIO_BUDGET

    budget = client.server.app[AUDIO_BUDGET].memory
    bomb = gzip_of_zeros(40)
    responses = await asyncio.gather(*(client.post("/stt", data=bomb, headers={**AUTH, "Content-Encoding": "gzip"})
                                       for _ in range(16)))
    statuses = sorted(r.status for r in responses)
    assert 503 in statuses and set(statuses) <= {400, 503}  # zeros are no audio: 400 for those admitted
    refused = [r for r in responses if r.status == 503]
    assert all(r.headers["Retry-After"] for r in refused)
    assert "memory" in (await refused[0].json())["message"]
    assert budget.peak <= 128 * MiB
    assert budget.held == 0  # every request gave back what it held


async def test_a_body_declared_over_the_budget_is_refused_before_it_is_read(make_client: Any) -> None:
    engine = FakeEngine(delay=1.0)
    client = await make_client(engine, limits={"max_held_bytes": 1 * MiB})
    body = wav(tone(440, 20.0, 16000))  # 640 kB, 2.5 MB decoded
    first = asyncio.create_task(client.post("/stt", data=body, headers=AUTH))
    await asyncio.to_thread(engine.running.wait, 5)
    second = await client.post("/stt", data=body, headers=AUTH)
    assert second.status == 503 and second.headers["Retry-After"]
    assert (await first).status == 200
    assert (await client.post("/stt", data=body, headers=AUTH)).status == 200  # released


async def test_chunked_body_is_reserved_as_it_is_read(make_client: Any) -> None:
    client = await make_client(FakeEngine())

    async def chunks() -> Any:
        data = wav(tone(440, 2.0, 16000))
        for i in range(0, len(data), 10_000):
            yield data[i:i + 10_000]

    resp = await client.post("/stt", data=chunks(), headers=AUTH)
    assert resp.status == 200


# -- P7: a large form field other than the audio is refused before it is buffered or decoded -------------------

async def test_a_99_mib_form_field_of_0xff_is_refused_without_stalling_the_loop(client: Any) -> None:
    """A 99 MiB field of 0xFF from a 100 kB gzip form was decoded as UTF-8 in one GIL-holding call: /ping
    waited 0.9 s."""
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n').encode()
    field = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'.encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(head + wav(tone(440, 1.0, 16000)) + field)]
    block = b"\xff" * MiB
    parts += [packer.compress(block) for _ in range(99)]
    parts.append(packer.compress(f"\r\n--{boundary}--\r\n".encode()) + packer.flush())
    body = b"".join(parts)
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = loop.time()
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - started)

    ticking = asyncio.create_task(ticker())
    resp = await client.post("/stt", data=body, headers=headers)
    done.set()
    await ticking
    assert resp.status == 413 and "prompt" in (await resp.json())["message"]
    # 0.9 s before, on an idle machine; the bound leaves room for a loaded one (the test client shares the loop;
    # bench/abuse.py measures /ping from another process against a baseline).
    assert max(gaps) < 0.3


# -- P10: a parser's failure is the request's fault ------------------------------------------------------------

async def test_json_nested_5000_deep_on_v1_listen_is_400_not_500(client: Any) -> None:
    body = b"[" * 5000 + b"]" * 5000
    resp = await client.post("/v1/listen", data=body, headers={**AUTH, "Content-Type": "application/json"})
    # Not JSON that asks for a URL fetch: read as audio (FFmpeg's probe takes what it can), never a 500.
    assert resp.status in (200, 400) and resp.content_type == "application/json"


async def test_recursion_error_anywhere_in_a_handler_is_400(make_client: Any) -> None:
    class Deep(FakeEngine):
        def transcribe(self, audio: Any, options: Any) -> Any:
            return json.loads("[" * 100_000 + "]" * 100_000)

    client = await make_client(Deep())
    resp = await client.post("/stt?vad_filter=false", data=wav(tone(440, 1.0, 16000)), headers=AUTH)
    assert resp.status in (400, 500)  # the engine's failure is a 500 by design (stt/http/service._guarded)
    assert (await resp.json())["status"] == "failed"


# -- P8: logs that a client cannot forge or flood --------------------------------------------------------------

FORGED = "/nope\n2099-01-01 00:00:00,000 INFO stt.access: 00000000 POST /stt 200 audio=- total=0.001s\x1b[2J\r"


def test_safe_escapes_control_characters_and_truncates() -> None:
    text = safe(FORGED + "x" * 500)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "\\x0a2099" in text and text.endswith("chars)") and len(text) < 260
    assert safe("\u202egnp.exe") == "\\u202egnp.exe"


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_forged_access_log_line_is_impossible_before_auth(make_client: Any, fmt: str) -> None:
    stream = io.StringIO()
    handler = make_handler(LoggingSettings(format=fmt), stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        client = await make_client(FakeEngine())
        path = FORGED.replace("\n", "%0A").replace("\x1b", "%1B").replace("\r", "%0D").replace(" ", "%20")
        assert (await client.post(path, data=b"x")).status in (401, 404)
        assert (await client.get("/ping?q=%0A%1B")).status == 401
        logging.getLogger("stt.test").error("boom", exc_info=ValueError("line\n2099-01-01 forged"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert lines and "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert not any(line.startswith("2099") for line in lines)
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert any("\\x0a2099" in r.get("route", "") for r in records)
    else:
        stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
        assert all(stamp.match(line) or line.startswith("  ") for line in lines)
        assert any("\\x0a2099" in line for line in lines)


def test_one_log_message_is_cut_at_a_bound() -> None:
    stream = io.StringIO()
    handler = make_handler(LoggingSettings(), stream)
    record = logging.LogRecord("stt.test", logging.WARNING, __file__, 1, "type %s", ("A" * 4_000_000,), None)
    handler.handle(record)
    assert len(stream.getvalue()) < 5000


# -- P4: whole-upload paths hold the decoded audio once --------------------------------------------------------

def test_decoded_audio_is_one_array_reserved_before_it_is_allocated() -> None:
    data = wav(tone(440, 60.0, 44100), rate=44100)
    reserved: list[int] = []
    audio = decode_audio(data, reserve=reserved.append)
    owner = audio.base if audio.base is not None else audio
    assert sum(reserved) == owner.nbytes  # one buffer, the size the header announced (+1 s of room)
    assert owner.nbytes - audio.nbytes <= 16000 * 4
    assert abs(len(audio) - 60 * 16000) < 100


def test_decoded_audio_of_unknown_length_grows_without_chunks() -> None:
    buffer = io.BytesIO()
    sf.write(buffer, tone(440, 30.0, 16000), 16000, format="OGG", subtype="VORBIS")
    reserved: list[int] = []
    audio = decode_audio(buffer.getvalue(), reserve=reserved.append)
    assert abs(len(audio) - 30 * 16000) < 2000
    assert sum(reserved) < 3 * audio.nbytes + 4 * 16000 * 4


def near_silence(seconds: float, speech_at: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(seconds * 16000)) * 1e-4).astype(np.float32)  # -80 dBFS hiss
    if speech_at is not None:
        speech = decode_audio((AUDIO_DIR / SPEECH).read_bytes())
        start = int(speech_at * 16000)
        audio[start:start + len(speech)] += speech
    return audio


@pytest.mark.model
def test_vad_filter_false_skips_long_silence_but_keeps_every_sound() -> None:
    audio = near_silence(600.0, speech_at=300.0)
    stretches = sound_stretches(audio)
    kept = sum(e - s for s, e in stretches) / 16000
    assert any(s <= 300 * 16000 and e >= 310.4 * 16000 for s, e in stretches)
    assert kept < 30  # of 600 s: the rest is silence Whisper would have read as "you you you"
    speech = decode_audio((AUDIO_DIR / SPEECH).read_bytes())
    assert sound_stretches(speech) == [(0, len(speech))]  # ordinary recordings: everything, untouched
    gaps = np.concatenate([speech, np.zeros(int((SILENT_STRETCH_S - 5) * 16000), np.float32), speech])
    assert sound_stretches(gaps) == [(0, len(gaps))]  # pauses shorter than a stretch are kept


@pytest.mark.model
def test_the_engine_path_finds_the_speech_faster_whisper_found() -> None:
    from faster_whisper.vad import get_speech_timestamps

    audio = near_silence(200.0, speech_at=75.0)  # speech across the edge of a minute
    ours = whisper_speech(audio)
    theirs = [(c["start"], c["end"]) for c in get_speech_timestamps(audio)]
    assert len(ours) == len(theirs) == 1
    assert abs(ours[0][0] - theirs[0][0]) < 1600 and abs(ours[0][1] - theirs[0][1]) < 1600


@pytest.mark.model
def test_vad_filter_false_transcribes_speech_in_near_silence_without_inventing_words(fw_tiny: Any) -> None:
    from stt.engines.base import TranscribeOptions

    audio = near_silence(300.0, speech_at=150.0)
    started = time.process_time()
    transcript = fw_tiny.transcribe(audio, TranscribeOptions(language="en", vad_filter=False))
    cpu = time.process_time() - started
    words = transcript.text.lower()
    assert "stew for dinner" in words and len(words.split()) < 40
    assert all(149 <= s.start and s.end <= 162 for s in transcript.segments)
    assert cpu < 60  # 5 min of Whisper on near-silence alone took ~6 CPU-s per 30 s before


# -- RSS of a real server ---------------------------------------------------------------------------------------

def _flac(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16000, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


class RssSampler:
    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak = self.start = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        for line in self._path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MiB


@pytest.fixture(scope="module")
def server() -> Any:
    from tests.serverproc import ServerProcess

    with tempfile.TemporaryDirectory() as folder:
        config = {"asr": {"model": "tiny.en", "threads": 2, "beam_size": 1},
                  "limits": {"max_held_bytes": 256 * MiB}}
        proc = ServerProcess(config, Path(folder)).start()
        try:
            yield proc
        finally:
            proc.stop()


@pytest.mark.model
def test_server_rss_under_16_concurrent_gzip_bombs_stays_within_the_budget(server: Any) -> None:
    import requests

    bomb = gzip_of_zeros(100)  # 100 kB -> 100 MiB, the request limit
    results: list[int] = []

    def post() -> None:
        resp = requests.post(f"{server.url}/stt", data=bomb, headers={**AUTH, "Content-Encoding": "gzip"},
                             timeout=120)
        results.append(resp.status_code)

    with RssSampler(server.proc.pid) as rss:
        threads = [threading.Thread(target=post) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert 503 in results and set(results) <= {400, 503}
    # Within the budget (256 MiB) itself: measured +206 MiB. Before: +4.28 GB for 16 bombs; with the budget
    # but the inflated pieces joined (freed pieces left resident in heap arenas): +285 and +341 MiB.
    print(f"\n16 gzip bombs, 256 MiB budget: RSS +{rss.growth_mb:.1f} MiB")
    assert rss.growth_mb <= 256, rss.growth_mb


@pytest.mark.model
@pytest.mark.parametrize("query", ["", "?temperature=0.2", "?vad_filter=false"])
def test_server_rss_for_an_hour_of_near_silence_is_the_decoded_audio_and_a_bounded_rest(server: Any,
                                                                                       query: str) -> None:
    import requests

    body = _flac(near_silence(3600.0, speech_at=1800.0))
    decoded_mb = 3600 * 16000 * 4 / MiB  # 220 MiB
    with RssSampler(server.proc.pid) as rss:
        resp = requests.post(f"{server.url}/stt{query}", data=body, headers=AUTH, timeout=600)
    assert resp.status_code == 200 and "stew" in resp.json()["text"].lower()
    assert rss.growth_mb < decoded_mb + len(body) / MiB + 300, rss.growth_mb


def test_a_refused_reservation_reaches_the_caller_as_it_was() -> None:
    def refuse(nbytes: int) -> None:
        raise OverBudget(nbytes, 0, 0)

    with pytest.raises(OverBudget):
        decode_audio(wav(tone(440, 2.0, 16000)), reserve=refuse)


async def test_an_upload_hands_its_windows_over_a_bounded_group_at_a_time() -> None:
    """All of a long upload's windows were copied at once: a second copy of its speech."""
    from stt.engines.base import TranscribeOptions, WindowResult
    from stt.inference.uploads import GROUP_S, GROUPS_IN_FLIGHT, transcribe_windows

    audio = np.zeros(3600 * 16000, dtype=np.float32)  # an hour of "speech" in 20 s pieces, 1 s apart
    speech = [(s, s + 20 * 16000) for s in range(0, len(audio) - 20 * 16000, 21 * 16000)]
    in_flight, most = [0], [0]

    class Engine:
        def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
            return speech

    async def run(job: Any) -> Any:
        return job()

    async def decode(windows: Any, upload_samples: int) -> list[WindowResult]:
        size = sum(len(w.audio) for w in windows)
        in_flight[0] += size
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.001)
        in_flight[0] -= size
        return [WindowResult("x", (), "en") for _ in windows]

    transcript = await transcribe_windows(Engine(), audio, TranscribeOptions(language="en"), run, decode)
    assert len(transcript.segments) == len(speech)  # every window answered, in order
    assert most[0] <= GROUPS_IN_FLIGHT * GROUP_S * 16000
