"""Hardening, round 2 (issue 9): each attack from the adversarial pass, repeated on the real app.

The heavy versions (a real server process, peak RSS, /ping latency while the attack runs) are in
bench/abuse.py; these are the fast contract checks that fail without the fix.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from stt.audio import decode_audio
from stt.errors import AudioError
from tests.bad_inputs import tone, wav_bytes, wav_header
from tests.conftest import AUTH
from tests.helpers import TOKEN, FakeEngine
from tests.live_helpers import collect

PCM = "/v1/listen?encoding=linear16&channels=1"


# -- 1, 2: one sane range of sample rates wherever audio enters --------------------------------------------

def test_a_one_hertz_wav_is_refused_before_decoding() -> None:
    """28,844 bytes at 1 Hz claimed 14,400 s and decoded to 0.9 GB of float32."""
    body = wav_header(rate=1, channels=1, data_size=28_800) + bytes(28_800)
    with pytest.raises(AudioError, match="sample rate: 1 Hz"):
        decode_audio(body, max_seconds=4 * 3600)


def test_the_lowest_and_highest_accepted_rates_decode() -> None:
    for rate in (8000, 192_000):
        assert len(decode_audio(wav_bytes(tone(0.5, rate), rate=rate))) == 8000


async def test_upload_at_one_hertz_is_400(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine)
    body = wav_header(rate=1, channels=1, data_size=7_200) + bytes(7_200)
    resp = await client.post("/stt", data=body, headers=AUTH)
    assert resp.status == 400 and "sample rate" in (await resp.json())["message"]
    assert engine.calls == 0


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


# -- 10: FLAC decodes what is there, whatever its header says ------------------------------------------------

def _flac(seconds: float, rate: int = 16000) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, rate), rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _with_total_samples(flac: bytes, total: int) -> bytes:
    """Rewrite STREAMINFO's 36-bit total sample count (0: unknown, as FFmpeg writes to a pipe)."""
    assert flac[:4] == b"fLaC"
    field = int.from_bytes(flac[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


def test_flac_with_no_length_in_its_header_decodes() -> None:
    audio = decode_audio(_with_total_samples(_flac(5.0), 0), max_seconds=600)
    assert abs(len(audio) - 5 * 16000) < 1600


def test_flac_with_no_length_over_the_limit_is_refused_while_reading() -> None:
    from stt.errors import TooLarge

    with pytest.raises(TooLarge, match="too long"):
        decode_audio(_with_total_samples(_flac(5.0), 0), max_seconds=2.0)


def test_flac_whose_header_lies_low_is_decoded_whole() -> None:
    """The header says 1 s, the file holds 30 s: all of it is transcribed, none dropped silently."""
    audio = decode_audio(_with_total_samples(_flac(30.0), 16000), max_seconds=600)
    assert abs(len(audio) - 30 * 16000) < 1600
