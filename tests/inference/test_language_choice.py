"""Between two close detections the first window is decoded in both languages and the jointly likelier reading wins
(stt.inference.language_choice): the rule on fakes, the uploads' plumbing (the winner's decoding is the first
window's result, never decoded a third time; plain and streamed alike), and the real model on accented English."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowRequest, WindowResult, WindowScores, Word
from stt.engines.batched_windows import window_ranking
from stt.engines.rivals import RIVAL_RATIO, likeliest, rivals
from stt.inference.speech_windows import cut_windows, upload_ranking
from tests.conftest import AUTH
from tests.helpers import joined_with_gaps, manifest, wav, wer
from tests.inference.test_inference_windows import WindowEngine
from tests.inference.test_speech_search import streamed_and_plain
from tests.inference.test_upload_language import three_windows

S = SAMPLE_RATE


def result(text: str, logprob: float | None, lang: str = "en") -> WindowResult:
    return WindowResult(text, (), lang, 1.0, WindowScores(-0.5, 1.2, 0.01, logprob))


def test_rivals_are_the_first_two_within_a_factor() -> None:
    assert rivals([("zh", 0.6), ("en", 0.3), ("de", 0.1)]) == [("zh", 0.6), ("en", 0.3)]
    assert rivals([("en", 0.95), ("de", 0.05)]) == [("en", 0.95)]  # sure: one decoding
    assert rivals([("en", 0.5), ("de", 0.5 * RIVAL_RATIO)]) == [("en", 0.5), ("de", 0.5 * RIVAL_RATIO)]
    assert rivals([("en", 1.0)]) == [("en", 1.0)]
    # Allowed languages first narrow the detection (shares among them), as choose_language does.
    assert rivals([("zh", 0.6), ("en", 0.3), ("de", 0.1)], ("de", "en")) == [("en", pytest.approx(0.75)),
                                                                        ("de", pytest.approx(0.25))]
    assert rivals([("zh", 0.9), ("en", 0.01)], ("fr", "en")) == [("en", 1.0)]
    assert rivals([("zh", 1.0)], ("fr",)) == [("fr", 0.0)]


def test_the_jointly_likelier_reading_wins() -> None:
    candidates = [("zh", 0.6), ("en", 0.3)]
    # log 0.6 - 20 < log 0.3 - 6: the second language's reading is far likelier.
    assert likeliest(candidates, [result("远迪", -20.0, "zh"), result("And the legs.", -6.0)]) == 1
    # log 0.6 - 6.5 > log 0.3 - 6.0 (by 0.19): the detector's first stands.
    assert math.log(0.6) - 6.5 > math.log(0.3) - 6.0
    assert likeliest(candidates, [result("x y", -6.5, "zh"), result("x z", -6.0)]) == 0


def test_a_loop_or_nothing_does_not_compete() -> None:
    candidates = [("en", 0.5), ("cy", 0.1)]
    loop = result(" ".join(["ni"] * 17), -1.0, "cy")  # very likely once the decoder is in it
    assert likeliest(candidates, [result("The game is on top, baseball.", -18.0), loop]) == 0
    assert likeliest(candidates, [result("Something said.", -18.0), result("", -0.5, "cy")]) == 0
    # Scores unknown (an engine that does not report them): the detector's first.
    unknown = WindowResult("text", (), "cy", 1.0, None)
    assert likeliest(candidates, [result("a", None), unknown]) == 0
    assert likeliest(candidates, [loop, result("", -1.0)]) == 0


class Unsure(WindowEngine):
    """Detection unsure between Chinese and English; decoding reads English far likelier. Records each decoded
    window's language (by the window's first sample) and the detections."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded: list[tuple[float, str | None]] = []

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        return [("zh", 0.6), ("en", 0.35), ("ja", 0.05)]

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.decoded += [(float(r.audio[0]), r.language) for r in requests]
        return [WindowResult(f" {r.audio[0]:g} {r.language}", (Word(0.0, len(r.audio) / S, f" {r.audio[0]:g}", 1.0),),
                             r.language or "en", 0.9,
                             WindowScores(-0.5, 1.2, 0.01, -5.0 if r.language == "en" else -30.0))
                for r in requests]


def windows_of(values: Sequence[float]) -> np.ndarray:
    gap = np.zeros(S, np.float32)
    return np.concatenate([p for v in values for p in (np.full(30 * S, v, np.float32), gap)])


async def test_upload_in_the_likelier_language_first_window_decoded_once_per_candidate() -> None:
    """Plain and streamed: the first window decoded in Chinese and English (one batch), English kept and its
    decoding used as the first window's result; the other windows decoded once, in English; the same text both
    ways, and the detector's probability of English reported."""
    engine = Unsure()
    events, _, plain = await streamed_and_plain(engine, windows_of([0.25, 0.5, 0.75]))
    streamed = events[-1]
    assert isinstance(streamed, Transcript) and isinstance(plain, Transcript)
    for transcript in (streamed, plain):
        assert (transcript.language, transcript.language_probability) == ("en", pytest.approx(0.35))
        assert transcript.text.split() == ["0.25", "0.5", "0.75"]
    once = [(0.25, "zh"), (0.25, "en"), (0.5, "en"), (0.75, "en")]
    assert engine.decoded == once + once  # streamed, then plain: never a third decoding of the first window


async def test_a_sure_detection_decodes_nothing_more() -> None:
    """FakeEngine's detection is sure (English 0.95): one decoding per window, as before."""
    class Sure(Unsure):
        def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
            return [("de", 0.93), ("en", 0.07)]

    engine = Sure()
    _, _, plain = await streamed_and_plain(engine, three_windows(0.0))
    assert plain.language == "de" and [lang for _, lang in engine.decoded] == ["de"] * 6


# -- the real model ----------------------------------------------------------------------------------------

# Short clips of accented English (speechocean762) whose detection puts another language first.
ACCENTED = ["eval/speechocean762/0461/004610065.wav", "eval/speechocean762/0096/000960071.wav",
            "eval/speechocean762/0457/004570106.wav"]


@pytest.mark.model
@pytest.mark.parametrize("name", ACCENTED)
async def test_real_accented_english_detected_elsewhere_comes_back_in_english(make_client: Any, fw_base: Engine,
                                                                             name: str) -> None:
    clip = manifest()[name]
    audio = decode_audio(clip.path.read_bytes())
    ranked = upload_ranking(fw_base, audio, fw_base.find_speech(audio))
    assert ranked[0][0] != "en" and len(rivals(ranked)) == 2 and rivals(ranked)[1][0] == "en"
    client = await make_client(fw_base)
    resp = await client.post("/stt", params={"output": "verbose_json"}, data=clip.path.read_bytes(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["language"] == "en"
    assert body["language_probability"] == pytest.approx(dict(ranked)["en"], abs=1e-4)
    assert wer(clip.transcript, body["text"]) < 0.5


# Accented English utterances joined into uploads whose first (only) window holds over 15 s of speech: detected
# on that window's own encoding, whose detection puts Chinese first and English second.
JOINED = [["0461/004610037", "0461/004610054", "0461/004610065", "0461/004610129", "0461/004610148"],
          ["1109/011090011", "1109/011090020", "1109/011090034", "1109/011090089", "1109/011090140"]]


@pytest.mark.model
@pytest.mark.parametrize("names", JOINED, ids=lambda names: names[0].split("/")[1])
async def test_real_long_window_unsure_of_its_language_comes_back_in_english(make_client: Any, fw_base: Any,
                                                                            names: list[str]) -> None:
    """The choice made in the window's own decoding (stt.engines.rivals in the batched decoder): an upload of one
    window over 15 s asks for no language, its own detection is unsure between Chinese and English, and `/stt`
    answers in English with the detector's probability of English; the same decoding alone, or batched with other
    windows, gives the same result."""
    clips = [manifest()[f"eval/speechocean762/{n}.wav"] for n in names]
    upload = joined_with_gaps(clips, 1.0)[0]
    windows = cut_windows(fw_base.find_speech(upload), len(upload))
    assert len(windows) == 1 and fw_base.detects_in_window(windows[0].samples)
    audio = windows[0].audio(upload)
    ranked = window_ranking(fw_base._model, audio)
    assert ranked[0][0] != "en" and [lang for lang, _ in rivals(ranked)] == [ranked[0][0], "en"]
    client = await make_client(fw_base)
    resp = await client.post("/stt", params={"output": "verbose_json"}, data=wav(upload), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["language"] == "en", body["text"]
    assert body["language_probability"] == pytest.approx(dict(ranked)["en"], abs=1e-3)
    assert wer(" ".join(c.transcript for c in clips), body["text"]) < 0.5, body["text"]
    request = WindowRequest(audio, None, None, 5)
    alone = fw_base.decode_windows([request])[0]
    other = WindowRequest(decode_audio(manifest()["en/jfk.flac"].path.read_bytes()), None, None, 5)
    batched = fw_base.decode_windows([dataclasses.replace(other, audio=audio[: len(other.audio)]), request])[1]
    assert alone.language == batched.language == "en" and alone.text == batched.text


def test_rows_decoded_twice_take_their_encoding_on_a_gpu_from_the_features() -> None:
    """A window decoded in two languages needs its encoder output twice in the generate batch: indexed on the
    CPU, and on a GPU (whose output cannot be indexed from the host) its features encoded again."""
    import ctranslate2

    from stt.engines.batched_windows import _rows

    features = ctranslate2.StorageView.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))
    encoded_cpu = ctranslate2.StorageView.from_array(10 * np.arange(6, dtype=np.float32).reshape(2, 3))

    class GpuEncoded:
        device, shape = "cuda", [2, 3]

    class Model:
        class model:
            encoded: list[list[list[float]]] = []

            @classmethod
            def encode(cls, rows: Any) -> Any:
                cls.encoded.append(np.asarray(rows).tolist())
                return rows

    assert _rows(Model, encoded_cpu, features, [0, 1]) is encoded_cpu  # one row each: the batch as it is
    doubled = np.asarray(_rows(Model, encoded_cpu, features, [0, 1, 1])).tolist()
    assert doubled == [[0, 10, 20], [30, 40, 50], [30, 40, 50]]
    assert Model.model.encoded == []
    _rows(Model, GpuEncoded(), features, [0, 0, 1])
    assert Model.model.encoded == [[[0, 1, 2], [0, 1, 2], [3, 4, 5]]]
