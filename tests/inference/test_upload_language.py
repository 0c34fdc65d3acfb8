"""An upload's language is detected once, as faster-whisper's ``transcribe`` detects it (on 30 s of the upload
itself from just before its first speech), and every window is decoded in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowRequest, WindowResult
from stt.engines.languages import choose_language
from stt.inference.scheduler import Priority, Scheduler
from stt.inference.language_choice import choose_upload_language
from stt.inference.speech_windows import cut_windows, upload_language
from stt.inference.uploads import transcribe_windows
from stt.inference.window_batcher import WindowBatcher
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, joined_with_gaps, manifest, wav
from tests.inference.test_inference_windows import WindowEngine
from tests.inference.test_speech_search import streamed_and_plain

S = SAMPLE_RATE


class DetectingEngine(WindowEngine):
    """Records what language detection is asked on, and which language each window is decoded in."""

    def __init__(self) -> None:
        super().__init__()
        self.detected_on: list[np.ndarray] = []
        self.window_languages: list[str | None] = []

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        self.detected_on.append(audio)
        return [("de", 0.93), ("en", 0.07)]  # sure: no choice by decoding (tests/inference/test_language_choice.py)

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.window_languages += [r.language for r in requests]
        return super().decode_windows(requests)


async def run(engine: DetectingEngine, audio: np.ndarray, options: TranscribeOptions) -> Any:
    scheduler = Scheduler(1, 16, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    try:
        return await transcribe_windows(engine, audio, options, lambda job: scheduler.run(job, None, Priority.SPEECH),
                                        lambda windows, speech: batcher.decode(windows, object(), upload_samples=speech))
    finally:
        scheduler.close()


def three_windows(lead_in_s: float) -> np.ndarray:
    """``lead_in_s`` of silence, then three 30 s stretches of "speech" (1.0) with 1 s pauses."""
    gap = np.zeros(S, np.float32)
    speech = [p for _ in range(3) for p in (np.ones(30 * S, np.float32), gap)]
    return np.concatenate([np.zeros(int(lead_in_s * S), np.float32), *speech])


async def test_detected_once_per_upload_from_just_before_its_speech() -> None:
    engine = DetectingEngine()
    transcript = await run(engine, three_windows(lead_in_s=20.0), TranscribeOptions())
    assert len(engine.detected_on) == 1  # one detection, whatever the number of windows
    assert len(engine.window_languages) == 3 and set(engine.window_languages) == {"de"}
    # 30 s of the upload from 1 s before its first speech: the 20 s silent intro does not decide it.
    on = engine.detected_on[0]
    assert len(on) == 30 * S and np.count_nonzero(on == 0) == S
    assert (transcript.language, transcript.language_probability) == ("de", pytest.approx(0.93))


async def test_no_detection_when_the_language_is_given_and_a_list_is_honoured() -> None:
    engine = DetectingEngine()
    given = await run(engine, three_windows(0.0), TranscribeOptions(language="fr"))
    assert engine.detected_on == [] and set(engine.window_languages) == {"fr"}
    assert (given.language, given.language_probability) == ("fr", 1.0)
    engine = DetectingEngine()
    listed = await run(engine, three_windows(0.0), TranscribeOptions(languages=("en", "es")))
    assert listed.language == "en" and set(engine.window_languages) == {"en"}


async def test_silence_is_not_detected() -> None:
    engine = DetectingEngine()
    transcript = await run(engine, np.zeros(5 * S, np.float32), TranscribeOptions())
    assert engine.detected_on == [] and transcript.text == ""


# -- the real model ----------------------------------------------------------------------------------------

LANGUAGES = {"nonen/de_test_de.wav": "de", "nonen/es_test_es.wav": "es", "en/jfk.flac": "en"}


@pytest.mark.model
@pytest.mark.parametrize("name", list(LANGUAGES))
async def test_real_upload_language_is_the_engines_detection(make_client: Any, fw_base: Engine,
                                                             name: str) -> None:
    """The language and probability `/stt` answers are the engine's own detection on the upload (after a
    20 s silent intro, which detection skips as the speech search finds the speech after it)."""
    clip = decode_audio((AUDIO_DIR / name).read_bytes())
    body_bytes = wav(np.concatenate([np.zeros(20 * S, np.float32), clip]))
    upload = decode_audio(body_bytes)  # as the server decodes it (16-bit samples)
    client = await make_client(fw_base)
    resp = await client.post("/stt", params={"output": "verbose_json"}, data=body_bytes, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    speech = fw_base.find_speech(upload)
    expected = upload_language(fw_base, upload, speech, TranscribeOptions())
    alone = choose_language(fw_base.detect_language(clip))  # the clip without its intro
    assert expected is not None and body["language"] == expected[0] == alone[0] == LANGUAGES[name]
    assert body["language_probability"] == pytest.approx(expected[1], abs=1e-4)


def fleurs(lang: str, count: int) -> np.ndarray:
    """FLEURS clips of ``lang`` joined with 1 s pauses: over 25 s of speech in the first window."""
    clips = [manifest()[f"eval/fleurs/{lang}/{lang}-{i:03d}.ogg"] for i in range(count)]
    return joined_with_gaps(clips, 1.0)[0]


@pytest.mark.model
@pytest.mark.parametrize("lang", ["de", "en"])
def test_real_full_first_window_language_is_what_its_decoding_finds(fw_base: Any, lang: str) -> None:
    """An upload whose first window is a full one takes the language that window's decoding finds on its own
    encoding when it asks for none (``choose_upload_language``), and that decoding is the first window's result:
    the very language, probability and text of the window decoded alone asking for none."""
    upload = fleurs(lang, 4)
    speech = fw_base.find_speech(upload)
    first = cut_windows(speech, len(upload))[0]
    assert first.samples > 25 * S and fw_base.detects_in_window(first.samples)
    choice = choose_upload_language(fw_base, upload, speech, TranscribeOptions(), first)
    decoded = fw_base.decode_windows([WindowRequest(first.audio(upload), None, None, 5, words=True,
                                                    all_speech=True)])[0]
    assert choice.language is not None and choice.language[0] == decoded.language == lang
    assert choice.language[1] == pytest.approx(decoded.language_probability, abs=1e-6)
    assert choice.first is not None and choice.first.text == decoded.text


@pytest.mark.model
async def test_real_streamed_upload_is_the_plain_one(fw_base: Any) -> None:
    """German, language detected: streamed (its first window finding the language itself) and plain, the
    same transcript, language and probability."""
    events, _, plain = await streamed_and_plain(fw_base, fleurs("de", 4), workers=2)
    streamed = events[-1]
    assert isinstance(streamed, Transcript) and len(events) >= 3 and plain.language == "de"
    assert (streamed.text, streamed.language) == (plain.text, plain.language)
    assert streamed.language_probability == pytest.approx(plain.language_probability, abs=1e-6)


class Counting:
    """The real engine, counting its language detection passes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.detections = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        self.detections += 1
        return self.inner.detect_language(audio)


@pytest.mark.model
async def test_real_upload_of_one_window_of_speech_finds_its_language_itself(make_client: Any, fw_base: Any) -> None:
    """A 21 s Spanish clip (one window, over 15 s of speech) through `/stt`: no detection pass of its own, and the
    language and probability are what that window's decoding asking for none finds."""
    body_bytes = wav(decode_audio(manifest()["eval/fleurs/es/es-001.ogg"].path.read_bytes()))
    upload = decode_audio(body_bytes)
    windows = cut_windows(fw_base.find_speech(upload), len(upload))
    assert len(windows) == 1 and fw_base.detects_in_window(windows[0].samples)
    engine = Counting(fw_base)
    client = await make_client(engine)
    resp = await client.post("/stt", params={"output": "verbose_json"}, data=body_bytes, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and engine.detections == 0, body
    expected = fw_base.decode_windows([WindowRequest(windows[0].audio(upload), None, None, 5, words=True)])[0]
    assert body["language"] == expected.language == "es"
    assert body["language_probability"] == pytest.approx(expected.language_probability, abs=1e-4)
