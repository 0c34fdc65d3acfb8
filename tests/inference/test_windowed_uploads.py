"""Uploads decoded as speech windows on the real models: silence and noise cost nothing, timestamps stay on
the upload's timeline, accuracy matches the sequential decoding it replaces."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from tests.conftest import AUTH
from tests.helpers import joined_with_gaps, manifest, wer
from tests.live.test_live import pcm16_wav

NAMES = ["1089-134686-0001", "1089-134686-0005", "1089-134686-0030", "1089-134686-0000"]
GAP_S = 2.0


@pytest.mark.model
async def test_silence_gives_no_text_and_noise_costs_almost_nothing(make_client: Any, fw_base: Any) -> None:
    client = await make_client(fw_base)
    noise = np.random.default_rng(0).normal(0, 0.1, 10 * SAMPLE_RATE).astype(np.float32)
    for audio in (np.zeros(30 * SAMPLE_RATE, np.float32), noise):
        started = time.monotonic()
        resp = await client.post("/stt?output=verbose_json", data=pcm16_wav(audio), headers=AUTH)
        body = await resp.json()
        took = time.monotonic() - started
        print(f"{len(audio) / SAMPLE_RATE:g} s: {body['text']!r} in {took:.2f} s")
        assert resp.status == 200 and body["text"] == "" and body["segments"] == []
        assert took < 1.0  # was 14.8 s of temperature fallbacks on this noise


@pytest.mark.model
async def test_segments_and_words_stay_on_the_uploads_timeline(make_client: Any, fw_base: Any) -> None:
    clips = [manifest()[f"en/librispeech/{n}.flac"] for n in NAMES]
    joined, spans = joined_with_gaps(clips, GAP_S)
    data = pcm16_wav(joined)
    reference = " ".join(c.transcript for c in clips)
    client = await make_client(fw_base)
    verbose = "/stt?output=verbose_json&word_timestamps=true&language=en"
    windowed = await (await client.post(verbose, data=data, headers=AUTH)).json()
    whole = await (await client.post("/stt?vad_filter=false&language=en", data=data, headers=AUTH)).json()
    print(f"WER windows {wer(reference, windowed['text']):.3f}, sequential {wer(reference, whole['text']):.3f}")
    assert wer(reference, windowed["text"]) <= wer(reference, whole["text"]) + 0.02
    words = [w for s in windowed["segments"] for w in s["words"]]
    assert len(words) >= 0.9 * len(reference.split())
    for word in words:  # every word inside the clip it was said in (VAD pads speech by up to 0.4 s)
        assert any(start - 0.5 <= word["start"] <= word["end"] <= end + 0.5 for start, end in spans), word
    for segment in windowed["segments"]:  # a segment ends at a pause: it never spans two clips
        assert sum(segment["start"] < end and start < segment["end"] for start, end in spans) == 1, segment


@pytest.mark.model
async def test_openai_whisper_decodes_windows_too(make_client: Any, ow_base: Any) -> None:
    clip = manifest()["en/librispeech/1089-134686-0000.flac"]
    audio = np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), decode_audio(clip.path.read_bytes())])
    client = await make_client(ow_base)
    resp = await client.post("/stt?output=verbose_json&word_timestamps=true", data=pcm16_wav(audio), headers=AUTH)
    body = await resp.json()
    assert wer(clip.transcript, body["text"]) <= 0.1 and body["language"] == "en"
    assert body["segments"][0]["words"][0]["start"] >= 2.5  # mapped back past the cut-out silence


def _coverage(pieces: list[tuple[int, int]], length: int) -> np.ndarray:
    mask = np.zeros(length, bool)
    for start, end in pieces:
        mask[start:end] = True
    return mask


@pytest.mark.model
def test_the_search_for_speech_holds_a_stretch_of_the_upload_not_copies_of_all_of_it() -> None:
    import tracemalloc

    from stt.engines.speech import silero_speech

    chapter = decode_audio(manifest()["long/1089-134686_full_chapter.flac"].path.read_bytes())
    long = np.tile(chapter, 9)  # 41 min: faster-whisper's own search copies it whole about twice (320 MB)
    silero_speech(chapter[:SAMPLE_RATE])  # the ONNX session is loaded outside the measure
    tracemalloc.start()
    pieces = silero_speech(long)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{len(long) / SAMPLE_RATE:.0f} s of audio ({long.nbytes >> 20} MB): search peak {peak >> 20} MB")
    assert peak < 0.2 * long.nbytes
    assert len(pieces) >= 9 * 10 and all(0 < end - start <= 30 * SAMPLE_RATE for start, end in pieces)


@pytest.mark.model
def test_speech_found_a_stretch_at_a_time_is_the_speech_found_at_once() -> None:
    from stt.engines.speech import silero_speech

    chapter = decode_audio(manifest()["long/1089-134686_full_chapter.flac"].path.read_bytes())
    whole, stretches = silero_speech(chapter, chunk_s=1e9), silero_speech(chapter)  # a minute at a time
    a, b = _coverage(whole, len(chapter)), _coverage(stretches, len(chapter))
    assert (a & b).sum() / (a | b).sum() > 0.97
    assert all(0 < end - start <= 30 * SAMPLE_RATE for start, end in stretches)



ACCENTED = ["0457/004570124", "0461/004610037", "0461/004610054", "0461/004610065", "0461/004610129",
            "0461/004610148", "0563/005630017", "0563/005630044", "0563/005630072", "0563/005630081",
            "0563/005630122", "0567/005670043"]
JOINS = {"fleurs-en": ("en", [f"eval/fleurs/en/en-00{i}.ogg" for i in range(5)]),
         "fleurs-pt": ("pt", [f"eval/fleurs/pt/pt-00{i}.ogg" for i in range(5)]),
         "speechocean762": ("en", [f"eval/speechocean762/{n}.wav" for n in ACCENTED])}


@pytest.mark.model
@pytest.mark.parametrize("name", list(JOINS))
async def test_no_clip_of_a_long_upload_is_left_out(make_client: Any, fw_base: Any, name: str) -> None:
    """Clips joined with 1 s pauses make windows of 26-29 s that were read only in part: FLEURS en's first
    to its 15.8th second (en-002, 11.5 s, had no word), FLEURS pt's second from its 6th (pt-002 had none),
    the accented join's first to its 2nd of 29 s. Their unread stretches are decoded on their own
    (stt.engines.rests): every clip's words are in the transcript, timed inside the clip."""
    language, files = JOINS[name]
    clips = [manifest()[f] for f in files]
    joined, spans = joined_with_gaps(clips, 1.0)
    client = await make_client(fw_base)
    resp = await client.post(f"/stt?output=verbose_json&word_timestamps=true&language={language}",
                             data=pcm16_wav(joined), headers=AUTH)
    words = [w for s in (await resp.json())["segments"] for w in s["words"]]
    for clip, (start, end) in zip(clips, spans):
        said = [w for w in words if start - 0.5 <= (w["start"] + w["end"]) / 2 <= end + 0.5]
        print(f"{clip.file}: {len(said)} words of {len(clip.transcript.split())}")
        assert len(said) >= 0.6 * len(clip.transcript.split()), clip.file
