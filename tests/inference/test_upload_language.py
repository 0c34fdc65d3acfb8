"""An upload's language is detected once, as faster-whisper's ``transcribe`` detects it (on 30 s of the upload
itself from just before its first speech), and every window is decoded in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Engine, TranscribeOptions, WindowRequest, WindowResult
from stt.engines.languages import choose_language
from stt.inference.scheduler import Priority, Scheduler
from stt.inference.speech_windows import upload_language
from stt.inference.uploads import transcribe_windows
from stt.inference.window_batcher import WindowBatcher
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, wav
from tests.inference.test_inference_windows import WindowEngine

S = SAMPLE_RATE


class DetectingEngine(WindowEngine):
    """Records what language detection is asked on, and which language each window is decoded in."""

    def __init__(self) -> None:
        super().__init__()
        self.detected_on: list[np.ndarray] = []
        self.window_languages: list[str | None] = []

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        self.detected_on.append(audio)
        return [("de", 0.7), ("en", 0.3)]

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
    assert (transcript.language, transcript.language_probability) == ("de", pytest.approx(0.7))


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
