"""stt/http/formats.py and the faces' render.py: exact SRT / WebVTT / text output, clamping, verbose JSON and
Deepgram shapes."""

from __future__ import annotations

from stt.http import formats
from stt.http.faces.deepgram.render import deepgram_json
from stt.http.faces.native.render import languages_json, native_verbose_json
from stt.http.faces.openai.render import verbose_json
from stt.engines.base import Segment, Transcript, Word


def transcript(duration: float = 3725.5) -> Transcript:
    segments = (
        Segment(0, 0.0, 2.5, " Hello there.", words=(Word(0.0, 1.0, " Hello", 0.9), Word(1.0, 2.5, " there.", 0.7))),
        Segment(1, 2.5, 2.5, "   "),  # whitespace only: no cue
        Segment(2, 3661.001, 3725.9, " Bye, now!", words=(Word(3661.001, 3700.0, " Bye,", 0.5),
                                                         Word(3700.0, 3725.9, " now!", 0.6))),
    )
    return Transcript("Hello there. Bye, now!", segments, "en", 0.98, duration)


def test_srt_exact() -> None:
    assert formats.to_srt(transcript()) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
        "2\n01:01:01,001 --> 01:02:05,500\nBye, now!\n"
    )


def test_vtt_exact() -> None:
    assert formats.to_vtt(transcript()) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "01:01:01.001 --> 01:02:05.500\nBye, now!\n"
    )


def test_empty_transcript_is_valid_subtitles() -> None:
    empty = Transcript("", (), "en", 1.0, 1.0)
    assert formats.to_srt(empty) == ""
    assert formats.to_vtt(empty) == "WEBVTT\n"
    assert formats.to_text(empty) == "\n"


def test_overlapping_segments_are_made_monotonic() -> None:
    t = Transcript("a b", (Segment(0, 0.0, 2.0, " a"), Segment(1, 1.5, 3.0, " b")), "en", 1.0, 3.0)
    assert formats.to_srt(t).splitlines()[5] == "00:00:02,000 --> 00:00:03,000"


def test_render_text_content_types() -> None:
    t = transcript()
    assert formats.render_text("text", t) == formats.Rendered("Hello there. Bye, now!\n", "text/plain")
    assert formats.render_text("srt", t).content_type == "application/x-subrip"
    assert formats.render_text("vtt", t).content_type == "text/vtt"


def test_verbose_json_openai_shape() -> None:
    out = verbose_json(transcript(), "transcribe", words=True)
    assert out["task"] == "transcribe" and out["language"] == "english" and out["duration"] == 3725.5
    assert [s["id"] for s in out["segments"]] == [0, 1, 2]
    assert out["segments"][2]["end"] == 3725.5  # clamped to the audio
    assert out["segments"][2]["seek"] == 366100
    assert [w["word"] for w in out["words"]] == ["Hello", "there.", "Bye,", "now!"]
    assert out["usage"] == {"type": "duration", "seconds": 3725.5}


def test_native_verbose_json_has_words_per_segment() -> None:
    out = native_verbose_json(transcript(), "transcribe", 0.5, words=True)
    assert out["status"] == "success" and out["proc_duration"] == 0.5
    assert [w["word"] for w in out["segments"][0]["words"]] == ["Hello", "there."]
    assert len(out["words"]) == 4


def test_deepgram_words_and_transcript() -> None:
    out = deepgram_json(transcript(), request_id="r", sha256="s", engine="faster-whisper", model="base", punctuate=False,
                                detected=True)
    channel = out["results"]["channels"][0]
    alt = channel["alternatives"][0]
    assert alt["transcript"] == "hello there bye now"
    assert [(w["word"], w["punctuated_word"]) for w in alt["words"]] == [
        ("hello", "Hello"), ("there", "there."), ("bye", "Bye,"), ("now", "now!")]
    assert alt["confidence"] == 0.675
    assert channel["detected_language"] == "en"
    assert out["metadata"]["duration"] == 3725.5 and out["metadata"]["channels"] == 1
    punctuated = deepgram_json(transcript(), request_id="r", sha256="s", engine="faster-whisper", model="base", punctuate=True,
                                       detected=False)
    assert punctuated["results"]["channels"][0]["alternatives"][0]["transcript"] == "Hello there. Bye, now!"
    assert "detected_language" not in punctuated["results"]["channels"][0]


def test_languages_json_top() -> None:
    out = languages_json([("de", 0.8), ("en", 0.15), ("fr", 0.05)], top=2)
    assert out["language"] == "de" and out["probability"] == 0.8
    assert [entry["language"] for entry in out["languages"]] == ["de", "en"]


def test_deepgram_model_ids_agree_between_prerecorded_and_live() -> None:
    from stt.http.faces.deepgram.messages import metadata

    pre = deepgram_json(transcript(), request_id="r", sha256="s", engine="faster-whisper", model="base",
                                punctuate=True, detected=False)["metadata"]
    live = metadata(request_id="r", sha256="s", seconds=1.0, engine="faster-whisper", model_name="base")
    assert pre["models"] == live["models"] and pre["model_info"] == live["model_info"]
    other = metadata(request_id="r", sha256="s", seconds=1.0, engine="faster-whisper", model_name="tiny.en")
    assert other["models"] != live["models"]
