"""Issue 9, the live stream: sample rates out of range refused, odd values and messages, streams at shutdown,
clients that do not read, pings are not activity, a 1 Hz container."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from stt.errors import AudioError
from tests.bad_inputs import wav_header
from tests.conftest import AUTH
from tests.hardening_helpers import PCM, _ping_flooder
from tests.helpers import FakeEngine
from tests.live_helpers import collect


# -- 1, 2: one sane range of sample rates wherever audio enters --------------------------------------------

async def test_live_query_rate_below_the_range_is_400_before_upgrade(client: Any) -> None:
    for rate in ("1", "7999", "192001"):
        resp = await client.get(f"{PCM}&sample_rate={rate}", headers=AUTH)
        assert resp.status == 400, rate
        assert "sample_rate" in (await resp.json())["err_msg"]


async def test_live_handshake_rate_below_the_range_closes_1007(client: Any) -> None:
    ws = await client.ws_connect("/listen", headers=AUTH)
    await ws.send_str("sample rate: 1")
    await ws.send_bytes(bytes(20_000))
    received = await collect(ws)
    assert received.close_code == 1007 and "sample_rate" in received.close_reason


async def test_live_container_at_one_hertz_closes_1007_without_a_memory_bomb(client: Any) -> None:
    """Without encoding=linear16 the stream is a container: a WAV header declaring 1 Hz made every byte pair
    16,000 samples."""
    import resource

    ws = await client.ws_connect(f"{PCM.split('?')[0]}", headers=AUTH)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await ws.send_bytes(wav_header(rate=1, channels=1, data_size=40_000) + bytes(40_000))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await asyncio.wait_for(collect(ws), 20)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert received.close_code == 1007 and "sample rate: 1 Hz" in received.close_reason
    assert grown_mb < 100  # 20,000 samples at 1 Hz would be 320 M samples (1.3 GB) at 16 kHz


def test_pcm_decoder_refuses_rates_outside_the_range() -> None:
    from stt.live.audio_in import PcmDecoder

    for rate in (1, 7999, 192_001):
        with pytest.raises(AudioError, match="sample rate"):
            PcmDecoder(rate, 1)


# -- 12: odd values are 400s, odd messages do not kill a stream ------------------------------------------------

async def test_unicode_digit_endpointing_is_400(client: Any) -> None:
    resp = await client.get(f"{PCM}&endpointing=\u2460", headers=AUTH)
    assert resp.status == 400 and "endpointing" in (await resp.json())["err_msg"]


async def test_deeply_nested_json_message_is_ignored_and_the_stream_ends_normally(client: Any) -> None:
    ws = await client.ws_connect(f"{PCM}&sample_rate=16000", headers=AUTH)
    await ws.send_str("[" * 100_000 + "]" * 100_000)
    await ws.send_bytes(bytes(3200))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await collect(ws)
    assert received.close_code == 1000 and received.of("Metadata")


# -- 3, 6, 8: live streams at shutdown, clients that do not read, pings are not activity ---------------------

async def test_shutdown_flushes_the_utterance_in_progress_then_closes_1001(aiohttp_server: Any) -> None:
    """SIGTERM used to close every stream with 1001 at once: no final for the words heard, no Metadata."""
    from stt.http.app import create_app
    from tests.conftest import make_settings
    from tests.live_helpers import load_pcm16

    server = await aiohttp_server(create_app(make_settings(limits={"shutdown_timeout_seconds": 10}),
                                             engine=FakeEngine()))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.make_url(f"{PCM}&sample_rate=16000"), headers=AUTH)
        reader = asyncio.create_task(collect(ws))
        audio = load_pcm16("en/librispeech/1089-134686-0000.flac", 3)  # one sentence, no pause: no final before the end
        for i in range(0, len(audio), 3200):
            await ws.send_bytes(audio[i:i + 3200])
        await asyncio.sleep(1.0)  # let the server take in what was sent
        await asyncio.wait_for(server.close(), 15)
        received = await asyncio.wait_for(reader, 10)
    assert received.close_code == 1001 and "shutting down" in received.close_reason
    assert received.finals and received.final_text.strip(), received.messages
    assert received.messages[-1][1]["type"] == "Metadata"
    assert received.messages[-1][1]["duration"] == pytest.approx(3.0, abs=0.05)


async def test_a_client_that_never_reads_cannot_hold_shutdown(aiohttp_server: Any) -> None:
    """It kept the server alive > 60 s after SIGTERM with shutdown_timeout_seconds 10."""
    import threading
    import time

    from stt.http.app import create_app
    from tests.conftest import make_settings

    server = await aiohttp_server(create_app(make_settings(limits={"shutdown_timeout_seconds": 2,
                                                                   "stream_idle_seconds": 600}),
                                             engine=FakeEngine()))
    stop = threading.Event()
    flooder = threading.Thread(target=_ping_flooder, args=(server.port, f"{PCM}&sample_rate=16000", stop))
    flooder.start()
    try:
        await asyncio.sleep(3)  # long enough for the pongs to fill both socket buffers
        started = time.monotonic()
        await asyncio.wait_for(server.close(), 30)
        assert time.monotonic() - started < 2 + 3  # the budget, plus aiohttp's own handler wait
    finally:
        stop.set()
        await asyncio.to_thread(flooder.join, 10)


async def test_pings_do_not_keep_an_idle_stream_open(make_client: Any) -> None:
    """Idle means no audio and no KeepAlive: the old Deepgram SDK pings every 5 s and held a slot forever."""
    client = await make_client(FakeEngine(), limits={"stream_idle_seconds": 1})
    ws = await client.ws_connect(f"{PCM}&sample_rate=16000", headers=AUTH, autoping=False)
    started = asyncio.get_running_loop().time()

    async def ping() -> None:
        while True:
            await ws.ping()
            await asyncio.sleep(0.2)

    pinger = asyncio.create_task(ping())
    try:
        received = await asyncio.wait_for(collect(ws), 10)
    finally:
        pinger.cancel()
    assert received.close_code == 1011 and "no audio or KeepAlive" in received.close_reason
    assert asyncio.get_running_loop().time() - started < 3
