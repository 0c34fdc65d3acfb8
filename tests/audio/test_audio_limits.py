"""Issue 9, audio decoding: one sane range of sample rates wherever audio enters; FLAC decodes what is there,
whatever its header says."""

from __future__ import annotations

from typing import Any

import pytest

from stt.audio import decode_audio
from stt.errors import AudioError
from tests.bad_inputs import tone, wav_bytes, wav_header
from tests.conftest import AUTH
from tests.hardening_helpers import _with_total_samples
from tests.helpers import FakeEngine


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


# -- 10: FLAC decodes what is there, whatever its header says ------------------------------------------------

def _flac(seconds: float, rate: int = 16000) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, rate), rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


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
