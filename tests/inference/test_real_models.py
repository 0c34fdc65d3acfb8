"""The real models on real audio, through the real app.

Bounds (measured on this machine, 2026-11, base, beam 5): corpus WER over the 12 LibriSpeech test-clean clips in
the manifest is 1.8% for both engines (278 words: one word is 0.36 points); Whisper base's published test-clean
WER is 5.0%, so 6% leaves room for a different machine's float rounding but not for a broken model or decoder.
The lossy MP3 scores 9.7%, the 8 kHz WAV 9.9% (faster-whisper) and 18.3% (openai-whisper): bounds 15% and 25%.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import soundfile as sf
import soxr

from stt.http.app import create_app
from stt.engines.base import TranscribeOptions
from stt.audio import decode_audio
from tests.conftest import AUTH, _load, make_settings
from tests.helpers import encode, librispeech_clips, manifest, wer

pytestmark = pytest.mark.model

CORPUS_WER_BOUND = 0.06
OPENAI_SUBSET = ("1089-134686-0000", "1089-134686-0005", "1089-134686-0020", "1089-134686-0036")


async def _stt(aiohttp_client, engine, data: bytes) -> dict:
    client = await aiohttp_client(create_app(make_settings(), engine=engine))
    resp = await client.post("/stt", data=data, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    return body


@pytest.mark.parametrize("engine_fixture", ["fw_base", "ow_base"])
async def test_jfk_44k_stereo_24bit(request, aiohttp_client, engine_fixture) -> None:
    clip = manifest()["en/jfk.flac"]
    body = await _stt(aiohttp_client, request.getfixturevalue(engine_fixture), clip.path.read_bytes())
    assert wer(clip.transcript, body["text"]) <= 0.05, body["text"]
    assert body["language"] == "en"
    assert body["duration"] == pytest.approx(clip.seconds, abs=0.05)
    assert " a n d " not in body["text"]  # not the seed's characters-joined-by-spaces bug


async def test_librispeech_corpus_wer_faster_whisper(aiohttp_client, fw_base) -> None:
    client = await aiohttp_client(create_app(make_settings(), engine=fw_base))
    refs, hyps = [], []
    for clip in librispeech_clips():
        resp = await client.post("/stt", data=clip.path.read_bytes(), headers=AUTH)
        refs.append(clip.transcript)
        hyps.append((await resp.json())["text"])
    assert len(refs) >= 10
    assert wer(refs, hyps) <= CORPUS_WER_BOUND, list(zip(refs, hyps))


async def test_librispeech_wer_openai_whisper(aiohttp_client, ow_base) -> None:
    # A subset: openai-whisper fp32 is ~3x slower than faster-whisper int8 on this CPU.
    clips = [c for c in librispeech_clips() if any(k in c.file for k in OPENAI_SUBSET)]
    client = await aiohttp_client(create_app(make_settings(), engine=ow_base))
    hyps = []
    for clip in clips:
        resp = await client.post("/stt", data=clip.path.read_bytes(), headers=AUTH)
        hyps.append((await resp.json())["text"])
    assert wer([c.transcript for c in clips], hyps) <= CORPUS_WER_BOUND, hyps


@pytest.mark.parametrize(("name", "bound"), [
    ("en/librispeech/1272-141231-0002.mp3", 0.15),
    ("en/librispeech/1272-128104-0004-8k.wav", 0.15),
])
async def test_mp3_and_8k_wav(aiohttp_client, fw_base, name, bound) -> None:
    clip = manifest()[name]
    body = await _stt(aiohttp_client, fw_base, clip.path.read_bytes())
    assert wer(clip.transcript, body["text"]) <= bound, body["text"]


async def test_webm_opus_from_a_browser(aiohttp_client, fw_base) -> None:
    clip = manifest()["en/librispeech/1089-134686-0005.flac"]
    audio, rate = sf.read(clip.path, dtype="float32")
    webm = encode(soxr.resample(audio, rate, 48000), 48000, "webm", "libopus")
    body = await _stt(aiohttp_client, fw_base, webm)
    assert wer(clip.transcript, body["text"]) <= 0.1, body["text"]


def test_both_engines_give_the_same_transcript(ow_base) -> None:
    # faster-whisper in float32 runs the very weights openai-whisper was converted from, so the decoded
    # text must be identical; int8 (the default) may differ by rounding, which the WER tests bound.
    fw_fp32 = _load_compute("float32")
    for name in ("en/jfk.flac", "nonen/de_test_de.wav"):
        audio = decode_audio(manifest()[name].path.read_bytes())
        # Sequential decoding of the whole clip on both (VAD is the server's default, not an engine's).
        a = fw_fp32.transcribe(audio, TranscribeOptions(vad_filter=False))
        b = ow_base.transcribe(audio, TranscribeOptions(vad_filter=False))
        assert (a.text, a.language) == (b.text, b.language), name


def _load_compute(compute_type: str):  # type: ignore[no-untyped-def]
    from stt.engines.factory import load_engine

    return load_engine(make_settings(asr={"model": "base", "compute_type": compute_type, "threads": 2}).asr)


async def test_ping_stays_fast_during_a_long_transcription(aiohttp_client, fw_tiny) -> None:
    long_clip = manifest()["long/1089-134686_full_chapter.flac"]
    client = await aiohttp_client(create_app(make_settings(), engine=fw_tiny))
    job = asyncio.create_task(client.post("/stt", data=long_clip.path.read_bytes(), headers=AUTH))
    await asyncio.sleep(1.0)  # upload + decode done, the engine is working
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        assert (await client.get("/ping", headers=AUTH)).status == 200
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)
    assert not job.done(), "the transcription finished before the pings: the test proved nothing"
    assert sorted(latencies)[-1] < 0.25, latencies
    resp = await job
    assert wer(long_clip.transcript, (await resp.json())["text"]) <= 0.1
