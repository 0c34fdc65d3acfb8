"""stt/diarization without Whisper: clustering, speech stretches, speakers on words, the diarized formats,
the weights' sha256 check, and the faces' options (fake engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from deepgram.types.listen_v1response import ListenV1Response
from openai.types.audio import TranscriptionDiarized

from stt.http import formats
from stt.http.faces.deepgram.render import deepgram_json
from stt.http.faces.native.render import native_verbose_json
from stt.http.faces.openai.render import openai_diarized_json, verbose_json
from stt.diarization.assign import split_by_speaker, with_speakers
from stt.diarization.clustering import cluster
from stt.diarization.encoder import load_encoder, weights_path
from stt.diarization.pipeline import DiarizeOptions, Turn, speech_spans, word_turns
from stt.engines.base import Segment, Transcript, Word
from stt.models import ModelError
from stt.http.faces.deepgram.routes import refuse_url_body
from stt.errors import BadRequest
from tests.conftest import AUTH


def voices(n_speakers: int, per_speaker: int, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings like the encoder's (positive, L2-normed): a random direction per speaker plus noise."""
    rng = np.random.default_rng(seed)
    centres = 0.3 * np.abs(rng.normal(size=(n_speakers, 16 * n_speakers)))  # a shared part...
    for k in range(n_speakers):
        centres[k, 16 * k:16 * (k + 1)] += 1.0  # ...and each voice's own
    truth = np.repeat(np.arange(n_speakers), per_speaker)
    x = centres[truth] + noise * np.abs(rng.normal(size=(len(truth), centres.shape[1])))
    return x / np.linalg.norm(x, axis=1, keepdims=True), truth


def test_cluster_finds_the_speakers_and_numbers_them_in_order() -> None:
    x, truth = voices(4, 12, noise=0.3)
    labels = cluster(x)
    assert len(set(labels)) == 4 and labels[0] == 0
    # one label per true speaker, whatever the numbering
    assert all(len(set(labels[truth == k])) == 1 for k in range(4))


def test_cluster_honours_speaker_bounds() -> None:
    x, _ = voices(4, 10, noise=0.3)
    assert len(set(cluster(x, max_speakers=2))) == 2
    assert len(set(cluster(x, min_speakers=6))) == 6
    assert list(cluster(x[:1])) == [0]


def test_speech_spans_join_short_gaps_and_cut_long_stretches() -> None:
    frame = 0.032
    probs = np.zeros(500)
    probs[10:100] = 0.9  # 2.88 s
    probs[102:110] = 0.9  # gap of 64 ms: joined
    probs[150:460] = 0.9  # 9.9 s: cut in three
    spans = speech_spans(probs, frame)
    assert spans[0] == pytest.approx((0.32, 3.52))
    assert len(spans) == 4 and all(b - a <= 4.0 for a, b in spans)
    assert spans[1][0] == pytest.approx(4.8) and spans[-1][1] == pytest.approx(14.72)


def test_words_take_the_turn_they_overlap_most_or_the_nearest() -> None:
    turns = [Turn(0.0, 2.0, 0, 0.9), Turn(2.5, 4.0, 1, 0.8)]
    found = word_turns(turns, [(0.1, 0.5), (1.8, 2.6), (2.2, 2.4), (3.0, 3.5), (9.0, 9.5)])
    assert [t.speaker if t else None for t in found] == [0, 0, 1, 1, 1]
    assert word_turns([], [(0.0, 1.0)]) == [None]


def diarized_transcript() -> Transcript:
    words = (Word(0.0, 0.5, " Hello", 0.9), Word(0.5, 1.0, " there.", 0.8), Word(1.2, 1.6, " Hi!", 0.7),
             Word(2.0, 2.5, " Well-", 0.6), Word(2.5, 2.9, " -known.", 0.6))
    segments = (Segment(1, 0.0, 1.6, " Hello there. Hi!", words=words[:3]),
                Segment(2, 2.0, 2.9, " Well- -known.", words=words[3:]))
    t = Transcript("Hello there. Hi! Well- -known.", segments, "en", 0.9, 3.0)
    return with_speakers(t, [Turn(0.0, 1.05, 0, 0.91), Turn(1.15, 1.7, 1, 0.82), Turn(1.9, 3.0, 0, 0.77)])


def test_speakers_on_words_and_segments_split_at_changes() -> None:
    t = diarized_transcript()
    assert [w.speaker for s in t.segments for w in s.words] == [0, 0, 1, 0, 0]
    assert [s.speaker for s in t.segments] == [0, 0]  # the majority of each segment's words
    pieces = split_by_speaker(t)
    assert [(p.id, p.speaker, p.text.strip(), p.start, p.end) for p in pieces] == [
        (0, 0, "Hello there.", 0.0, 1.0), (1, 1, "Hi!", 1.2, 1.6), (2, 0, "Well- -known.", 2.0, 2.9)]


def test_subtitles_carry_speakers() -> None:
    t = diarized_transcript()
    assert formats.to_vtt(t).split("\n\n")[2] == "00:00:01.200 --> 00:00:01.600\n<v Speaker 1>Hi!"
    assert formats.to_srt(t).split("\n\n")[0] == "1\n00:00:00,000 --> 00:00:01,000\n[Speaker 0] Hello there."


def test_native_verbose_json_speakers() -> None:
    out = native_verbose_json(diarized_transcript(), "transcribe", 0.1, words=True)
    assert [(s["id"], s["speaker"]) for s in out["segments"]] == [(0, 0), (1, 1), (2, 0)]
    assert [w["speaker"] for w in out["words"]] == [0, 0, 1, 0, 0]


def test_openai_diarized_json_parses_with_the_sdk_type() -> None:
    body = openai_diarized_json(diarized_transcript())
    parsed = TranscriptionDiarized.model_validate(body)
    assert [(s.id, s.speaker, s.text) for s in parsed.segments] == [
        ("seg_0", "A", "Hello there."), ("seg_1", "B", "Hi!"), ("seg_2", "A", "Well- -known.")]
    assert parsed.task == "transcribe" and parsed.duration == 3.0


def test_openai_verbose_json_ids_from_zero_and_language_name() -> None:
    t = Transcript("a", (Segment(1, 0.0, 1.0, " a"), Segment(2, 1.0, 2.0, " b")), "de", 0.9, 2.0)
    out = verbose_json(t, "transcribe")
    assert [s["id"] for s in out["segments"]] == [0, 1] and out["language"] == "german"


def test_deepgram_diarized_shapes_parse_with_the_sdk_type() -> None:
    body = deepgram_json(diarized_transcript(), request_id="r", sha256="s", engine="e", model="m",
                                 punctuate=True, detected=False, diarize=True, utterances=True, paragraphs=True)
    parsed = ListenV1Response.model_validate(body)
    alt = parsed.results.channels[0].alternatives[0]
    assert [(w.word, w.speaker) for w in alt.words] == [
        ("hello", 0), ("there", 0), ("hi", 1), ("well", 0), ("known", 0)]  # no hyphen fragments
    assert [w.speaker_confidence for w in alt.words] == [0.91, 0.91, 0.82, 0.77, 0.77]
    assert [(u.speaker, u.transcript) for u in parsed.results.utterances] == [
        (0, "Hello there."), (1, "Hi!"), (0, "Well- -known.")]
    paragraphs = alt.paragraphs.paragraphs
    assert [(p.speaker, p.num_words, [s.text for s in p.sentences]) for p in paragraphs] == [
        (0, 2, ["Hello there."]), (1, 1, ["Hi!"]), (0, 2, ["Well- -known."])]
    assert alt.paragraphs.transcript.startswith("\nSpeaker 0: Hello there.\n\nSpeaker 1: Hi!")


def test_deepgram_without_diarize_has_no_speakers() -> None:
    body = deepgram_json(diarized_transcript(), request_id="r", sha256="s", engine="e", model="m",
                                 punctuate=False, detected=False, utterances=True)
    alt = body["results"]["channels"][0]["alternatives"][0]
    assert all("speaker" not in w for w in alt["words"]) and "paragraphs" not in alt
    assert body["results"]["utterances"][0]["transcript"] == "hello there"  # cut at the 0.2 s pause? no: 0.8 s
    assert all("speaker" not in u for u in body["results"]["utterances"])


def test_encoder_weights_are_verified(tmp_path: Path) -> None:
    assert load_encoder() is not None  # the pinned wheel's file passes
    bad = tmp_path / "pretrained.pt"
    bad.write_bytes(weights_path().read_bytes()[:-1] + b"x")
    with pytest.raises(ModelError, match="sha256"):
        load_encoder(bad)
    with pytest.raises(ModelError, match="missing"):
        load_encoder(tmp_path / "none.pt")


def test_deepgram_url_body_is_refused_with_its_reason() -> None:
    with pytest.raises(BadRequest, match="URL is not supported"):
        refuse_url_body("application/json", b'{"url": "https://example.com/a.wav"}')
    refuse_url_body("application/octet-stream", b"RIFF....")  # audio: untouched
    refuse_url_body("application/json", b"{not json")  # left to the decoder's 400


@pytest.mark.parametrize("params,param", [
    ({"diarize": "true", "min_speakers": "3", "max_speakers": "2"}, "min_speakers"),
    ({"min_speakers": "2"}, "min_speakers"),
    ({"diarize": "true", "max_speakers": "0"}, "max_speakers"),
    ({"diarize": "true", "max_speakers": "33"}, "max_speakers"),
])
async def test_native_speaker_options_are_checked(client: Any, wav_bytes: bytes, params: dict[str, str],
                                                  param: str) -> None:
    resp = await client.post("/stt", params=params, data=wav_bytes, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["param"] == param


async def test_diarize_accepted_on_every_face(client: Any, wav_bytes: bytes) -> None:
    resp = await client.post("/stt", params={"diarize": "true", "output": "verbose_json"}, data=wav_bytes,
                             headers=AUTH)
    assert resp.status == 200 and "words" in await resp.json()
    resp = await client.post("/v1/listen", params={"diarize": "true", "utterances": "true", "paragraphs": "true"},
                             data=wav_bytes, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and "utterances" in body["results"], body
    form = {"file": wav_bytes, "model": "gpt-4o-transcribe-diarize", "response_format": "diarized_json",
            "chunking_strategy": "auto"}
    resp = await client.post("/v1/audio/transcriptions", data=form, headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["task"] == "transcribe" and isinstance(body["segments"], list), body
    form = {"file": wav_bytes, "model": "whisper-1", "response_format": "diarized_json"}
    resp = await client.post("/v1/audio/translations", data=form, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "response_format"


async def test_deepgram_url_body_gets_a_clear_400(client: Any) -> None:
    resp = await client.post("/v1/listen", json={"url": "https://example.com/a.wav"}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400 and "URL" in body["err_msg"] and "not supported" in body["err_msg"], body


def test_deepgram_keyterms_become_hotwords() -> None:
    from stt.http.faces.deepgram.params import deepgram_request

    parsed = deepgram_request([("keyterm", "Birket Foster"), ("keywords", "Linnell:2"), ("keywords", "Carker")], 5)
    assert parsed.options.hotwords == "Birket Foster Linnell Carker"
    assert deepgram_request([], 5).options.hotwords is None
    with pytest.raises(BadRequest):
        deepgram_request([("keyterm", "x" * 200)] * 11, 5)


def test_audio_shorter_than_a_frame_has_no_speakers() -> None:
    from stt.diarization.diarizer import shared_diarizer

    t = Transcript("a", (Segment(0, 0.0, 0.01, " a", words=(Word(0.0, 0.01, " a", 0.9),)),), "en", 0.9, 0.01)
    out = shared_diarizer().label(t, np.zeros(100, dtype=np.float32), DiarizeOptions())
    assert out.segments[0].words[0].speaker is None
