"""The API options on real models and real audio: language detection, translation, subtitles, word timings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import srt
import webvtt

from stt.engines.base import Engine
from tests.conftest import AUTH
from tests.helpers import manifest, wer
from tests.faces.test_clients import assert_english_translation

pytestmark = pytest.mark.model

NON_ENGLISH = ["nonen/de_test_de.wav", "nonen/es_test_es.wav", "nonen/fr_test_fr.wav"]
LONG = "en/librispeech/1272-128104-0004-8k.wav"  # 29.4 s at 8 kHz: several segments
JFK = "en/jfk.flac"


@pytest.fixture
async def base_client(make_client: Any, fw_base: Engine) -> Any:
    return await make_client(fw_base)


@pytest.fixture
async def tiny_client(make_client: Any, fw_tiny: Engine) -> Any:
    return await make_client(fw_tiny, asr={"model": "tiny.en"})


@pytest.mark.parametrize("name", NON_ENGLISH)
async def test_detect_language_on_shared_clips(base_client: Any, name: str) -> None:
    clip = manifest()[name]
    resp = await base_client.post("/detect-language", data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["language"] == clip.lang, body
    assert body["probability"] > 0.5 and body["languages"][0]["language"] == clip.lang
    probabilities = [entry["probability"] for entry in body["languages"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("name", ["nonen/es_test_es.wav", "nonen/fr_test_fr.wav"])
async def test_translate_yields_english(base_client: Any, name: str) -> None:
    clip = manifest()[name]
    resp = await base_client.post("/stt", params={"task": "translate", "output": "verbose_json"},
                                  data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["task"] == "translate" and body["language"] == clip.lang
    assert_english_translation(body["text"], clip.transcript)


async def test_language_option_forces_the_language(base_client: Any) -> None:
    clip = manifest()["nonen/es_test_es.wav"]
    resp = await base_client.post("/stt", params={"language": "es"}, data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.json()
    assert body["language"] == "es" and wer(clip.transcript, body["text"], lang="es") <= 0.3, body


def check_cue_times(times: list[tuple[float, float]], duration: float) -> None:
    assert len(times) >= 2  # several segments, so order is really tested
    previous_end = 0.0
    for start, end in times:
        assert previous_end <= start <= end <= duration + 1e-3, times
        previous_end = end


@pytest.mark.parametrize("output", ["srt", "vtt"])
async def test_subtitles_parse_with_monotonic_times(tiny_client: Any, output: str) -> None:
    clip = manifest()[LONG]
    resp = await tiny_client.post("/stt", params={"output": output}, data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.text()
    assert resp.status == 200, body
    if output == "srt":
        cues = list(srt.parse(body))
        times = [(c.start / timedelta(seconds=1), c.end / timedelta(seconds=1)) for c in cues]
        text = " ".join(c.content for c in cues)
    else:
        captions = webvtt.from_string(body).captions
        times = [(c.start_in_seconds + c.start_time.milliseconds / 1000,
                  c.end_in_seconds + c.end_time.milliseconds / 1000) for c in captions]
        text = " ".join(c.text for c in captions)
    check_cue_times(times, clip.seconds)
    assert wer(clip.transcript, text) <= 0.25, text


async def test_word_timestamps_with_vad(tiny_client: Any) -> None:
    clip = manifest()[JFK]
    data = {"output": "verbose_json", "word_timestamps": "true", "vad_filter": "true", "beam_size": "2",
            "temperature": "0"}
    resp = await tiny_client.post("/stt", params=data, data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    words = body["words"]
    assert wer(clip.transcript, " ".join(w["word"] for w in words)) <= 0.25
    check_cue_times([(w["start"], w["end"]) for w in words], clip.seconds)
    assert all(0 <= w["probability"] <= 1 for w in words)


async def test_initial_prompt_steers_spelling(tiny_client: Any) -> None:
    """tiny.en writes the American "counseled"; a prompt in British spelling makes it write "counselled"."""
    clip = manifest()["en/librispeech/1089-134686-0001.flac"]  # "... his belly counselled him"
    texts = []
    for params in ({}, {"initial_prompt": "counselled him, said the doctor. the belly was full."}):
        resp = await tiny_client.post("/stt", params=params, data=clip.path.read_bytes(), headers=AUTH)
        assert resp.status == 200
        texts.append((await resp.json())["text"].lower())
    assert "counselled" not in texts[0] and "counselled" in texts[1], texts
