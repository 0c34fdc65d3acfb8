"""Deepgram's `numerals` (and `smart_format`, which implies it): spelled numbers as digits in the transcript and
its words, on pre-recorded requests, jobs' Deepgram bodies and the live WebSocket."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Segment, TranscribeOptions, Transcript, Word
from stt.numerals import digits, transcript_with_digits, words_with_digits
from tests.conftest import AUTH
from tests.faces.test_openai_stream import tone_wav
from tests.helpers import AUDIO_DIR, TOKEN, FakeEngine, wav
from tests.live_helpers import pcm16, stream

SPOKEN = (" I", " counted", " twenty", " five", " dogs,", " one", " cat", " and", " nine", " hundred.")


def spoken_words(seconds: float) -> tuple[Word, ...]:
    step = seconds / len(SPOKEN)
    return tuple(Word(i * step, (i + 1) * step, w, 0.9 - i * 0.01) for i, w in enumerate(SPOKEN))


class CountingEngine(FakeEngine):
    """Says the same sentence with spelled numbers, whatever the audio."""

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        seconds = len(audio) / SAMPLE_RATE
        words = spoken_words(seconds)
        text = "".join(w.word for w in words)
        segment = Segment(0, 0.0, seconds, text, words=words if options.word_timestamps else ())
        return Transcript(text.strip(), (segment,), options.language or "en", 0.99, seconds)


def test_a_run_of_number_words_becomes_one_word_spanning_them() -> None:
    words = words_with_digits(spoken_words(10.0), "en")
    assert [w.word for w in words] == [" I", " counted", " 25", " dogs,", " one", " cat", " and", " 900."]
    twenty_five = words[2]
    assert (twenty_five.start, twenty_five.end) == (2.0, 4.0)  # from "twenty"'s start to "five"'s end
    assert twenty_five.probability == pytest.approx(0.87)  # the run's lowest


def test_text_and_other_languages() -> None:
    assert digits("I counted twenty five dogs, one cat and nine hundred.", "en") == \
        "I counted 25 dogs, one cat and 900."
    assert digits("vingt-cinq euros", "fr") == "25 euros"
    assert digits("dreiundzwanzig Leute", "de") == "23 Leute"
    assert digits("двадцать пять", "ru") == "двадцать пять"  # a language text2num does not parse: unchanged
    plain = Transcript("No numbers here.", (Segment(0, 0.0, 1.0, " No numbers here."),), "en", 1.0, 1.0)
    assert transcript_with_digits(plain) is plain


def deepgram_words(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["results"]["channels"][0]["alternatives"][0]["words"]


@pytest.mark.parametrize("query", ["numerals=true&punctuate=true", "smart_format=true"])
async def test_prerecorded_numerals_in_transcript_words_and_utterances(make_client: Any, query: str) -> None:
    client = await make_client(CountingEngine())
    resp = await client.post(f"/v1/listen?{query}&utterances=true&paragraphs=true", data=tone_wav(5.0),
                             headers={"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    alternative = body["results"]["channels"][0]["alternatives"][0]
    assert alternative["transcript"] == "I counted 25 dogs, one cat and 900."
    assert [w["punctuated_word"] for w in alternative["words"]][2] == "25"
    assert [w["word"] for w in alternative["words"]][-1] == "900"
    assert body["results"]["utterances"][0]["transcript"] == "I counted 25 dogs, one cat and 900."
    assert "25 dogs" in alternative["paragraphs"]["transcript"]


async def test_prerecorded_without_numerals_keeps_the_words(make_client: Any) -> None:
    client = await make_client(CountingEngine())
    for query in ("punctuate=true", "numerals=false&punctuate=true"):
        resp = await client.post(f"/v1/listen?{query}", data=tone_wav(5.0),
                                 headers={"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"})
        body = await resp.json()
        assert body["results"]["channels"][0]["alternatives"][0]["transcript"] == \
            "I counted twenty five dogs, one cat and nine hundred."
    bad = await client.post("/v1/listen?numerals=maybe", data=tone_wav(1.0),
                            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"})
    assert bad.status == 400


# "Hello, Bertie, any good in your mind? Number ten, fresh Nelly is waiting on you." (the shared chapter,
# from 20.3 s): Whisper writes this "ten" as a word.
CHAPTER = "long/1089-134686_full_chapter.flac"
EXCERPT_S = (20.3, 27.0)


def excerpt() -> np.ndarray:
    audio = decode_audio((AUDIO_DIR / CHAPTER).read_bytes())
    return audio[int(EXCERPT_S[0] * SAMPLE_RATE):int(EXCERPT_S[1] * SAMPLE_RATE)]


def spelled(words: Sequence[str]) -> list[str]:
    return [w for w in words if re.fullmatch(r"ten[,.]?", w.lower())]


@pytest.mark.model
async def test_real_model_numerals_on_prerecorded_and_live(make_client: Any, fw_base: Any) -> None:
    client = await make_client(fw_base)
    audio = excerpt()
    headers = {"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"}
    plain = await (await client.post("/v1/listen?punctuate=true", data=wav(audio), headers=headers)).json()
    digit = await (await client.post("/v1/listen?punctuate=true&numerals=true", data=wav(audio),
                                     headers=headers)).json()
    plain_alt = plain["results"]["channels"][0]["alternatives"][0]
    digit_alt = digit["results"]["channels"][0]["alternatives"][0]
    assert spelled(plain_alt["transcript"].split()), plain_alt["transcript"]  # the premise: "ten" spelled
    assert digit_alt["transcript"] == digits(plain_alt["transcript"], "en")
    assert "10" in digit_alt["transcript"] and not spelled(digit_alt["transcript"].split())
    ten = next(w for w in plain_alt["words"] if w["word"] == "ten")
    assert any(w["word"] == "10" and w["start"] == ten["start"] for w in digit_alt["words"])

    ws = await client.ws_connect("/v1/listen?encoding=linear16&sample_rate=16000&punctuate=true&numerals=true",
                                 headers=AUTH)
    received = await stream(ws, pcm16(np.concatenate([audio, np.zeros(SAMPLE_RATE, np.float32)])), speed=0)
    finals = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in received.finals)
    assert "10" in finals and not spelled(finals.split()), finals
