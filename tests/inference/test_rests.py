"""Stretches of a window's speech its decoding left unread (no word in them, or one word stretched across them):
decoded on their own, with the text before them as the prompt, and put in their place (stt.engines.rests). A
fake decoder here; the real model on joined shared clips in tests/inference/test_windowed_uploads.py."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE
from stt.engines.base import WindowRequest, WindowResult, WindowScores, Word
from stt.engines.rests import MAX_RESTS, UNREAD_S, Stretch, unread, with_rests


def _request(seconds: float, **kw: object) -> WindowRequest:
    audio = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32)  # each sample its own index
    fields = {"language": "en", "prompt": "before.", "beam_size": 5, "all_speech": True, **kw}
    return WindowRequest(audio, **fields)  # type: ignore[arg-type]


def _words(*spans: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(start, end, f" {word}", 0.9) for start, end, word in spans)


def _result(words: tuple[Word, ...], no_speech: float = 0.01, avg: float = -0.2) -> WindowResult:
    text = "".join(w.word for w in words).strip()
    logprob = avg * (len(words) + 1)  # a token a word, and the end of text
    return WindowResult(text, words, "de", 0.9, WindowScores(avg, 1.0, no_speech, logprob))


def _read_to(until: float, tag: str = "w", **kw: float) -> WindowResult:
    """A reading with a word every second up to ``until`` seconds: "w0 w1 w2 …"."""
    spans = [(float(i), min(i + 1.0, until), f"{tag}{i}") for i in range(math.ceil(until))]
    return _result(_words(*spans), **kw)


class Decoder:
    """Answers each request with the next reading it was given, and keeps what it was asked."""

    def __init__(self, readings: Sequence[WindowResult]) -> None:
        self.readings = list(readings)
        self.asked: list[WindowRequest] = []

    def __call__(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.asked += requests
        return [self.readings.pop(0) for _ in requests]


def test_a_window_read_to_its_end_is_left_as_it_is() -> None:
    decode = Decoder([])
    request, result = _request(20.0), _read_to(20.0 - UNREAD_S + 0.1)
    assert unread(request, result) == []
    assert with_rests(decode, [request], [result]) == [result] and decode.asked == []


def test_the_rest_is_decoded_from_the_last_word_with_the_text_so_far_and_joined_on() -> None:
    request, first = _request(20.0, languages=("de", "fr")), _read_to(8.0)
    rest = dataclasses.replace(_read_to(11.5, "r"), language="fr")
    decode = Decoder([rest])
    [joined] = with_rests(decode, [request], [first])
    [asked] = decode.asked
    assert asked.audio[0] == 8 * SAMPLE_RATE and len(asked.audio) == 12 * SAMPLE_RATE  # from the last word on
    assert asked.prompt == f"before. {first.text}" and asked.language == "de" and asked.languages == ()
    assert asked.beam_size == 5 and asked.words and asked.all_speech
    assert joined.text == f"{first.text} {rest.text}" and joined.language == "de"
    assert [w.start for w in joined.words] == [*range(8), *(8.0 + t for t in range(12))]
    assert joined.scores is not None and first.scores is not None and rest.scores is not None
    assert joined.scores.logprob == pytest.approx(first.scores.logprob + rest.scores.logprob)  # type: ignore[operator]
    assert joined.scores.avg_logprob == pytest.approx(-0.2 * 22 / 21)  # 8 + 12 tokens and one end of text
    assert joined.scores.no_speech_prob == first.scores.no_speech_prob


def test_skipped_speech_at_the_start_and_a_word_stretched_across_it_are_read_again() -> None:
    # As FLEURS pt's second window was read: "O" aligned from 0 to 6 s, over a sentence the decoding skipped.
    request = _request(12.0, prompt=None)
    first = _result(_words((0.0, 6.0, "O"), (6.0, 6.6, "romantismo"), (6.6, 11.5, "tinha")))
    assert unread(request, first) == [Stretch(0.0, 6.0, 0, 1), Stretch(6.6, 11.5, 2, 3)]
    decode = Decoder([_result(_words((0.5, 2.0, "Giancarlo"), (2.0, 4.0, "largada."), (4.0, 5.9, "O"))),
                      _result(_words((0.0, 1.5, "tinha"), (1.5, 3.0, "um")))])
    [joined] = with_rests(decode, [request], [first])
    assert [q.prompt for q in decode.asked] == [None, "O romantismo"]  # the text before each stretch
    assert [(len(q.audio) / SAMPLE_RATE, q.audio[0] / SAMPLE_RATE) for q in decode.asked] == [(6.0, 0.0),
                                                                                              (4.9, 6.6)]
    assert joined.text == "Giancarlo largada. O romantismo tinha um"
    assert [w.start for w in joined.words] == [0.5, 2.0, 4.0, 6.0, 6.6, 6.6 + 1.5]


def test_a_stretched_word_the_reading_cut_off_is_kept_where_the_text_resumed() -> None:
    # FLEURS de: "Er" aligned across a skipped sentence; the sentence's reading, cut right after "Er", lacks it.
    first = _result(_words((0.0, 10.8, "Er"), (10.8, 11.2, "griff")))
    decode = Decoder([_result(_words((0.0, 2.0, "Für"), (2.0, 4.0, "die"), (4.0, 5.0, "Insel."), (5.0, 6.0, "x"),
                                     (6.0, 8.0, "y"), (8.0, 10.0, "fahren.")))])
    [joined] = with_rests(decode, [_request(11.4)], [first])
    assert joined.text == "Für die Insel. x y fahren. Er griff"
    assert [(w.start, w.end) for w in joined.words][-2:] == [(10.3, 10.8), (10.8, 11.2)]


def test_a_one_word_text_spanning_the_whole_window_is_not_read_again() -> None:
    # The alignment gives a single word the whole window: decoding the same audio again would read the same.
    request, result = _request(6.0), _result(_words((0.0, 6.0, "Yes.")))
    assert unread(request, result) == []
    assert with_rests(Decoder([]), [request], [result]) == [result]


def test_a_gap_between_words_is_read_and_put_between_them() -> None:
    first = _result(_words((0.0, 1.0, "a"), (4.0, 5.0, "d")))
    decode = Decoder([_result(_words((0.2, 1.0, "b"), (1.0, 2.5, "c")))])
    [joined] = with_rests(decode, [_request(5.2)], [first])
    assert joined.text == "a b c d" and [w.start for w in joined.words] == [0.0, 1.2, 2.0, 4.0]


def test_a_rest_the_decoder_finds_silent_adds_nothing() -> None:
    request, first = _request(20.0), _read_to(8.0)
    for silent in (_read_to(11.5, "Thanks", no_speech=0.9, avg=-1.5), _result(())):
        assert with_rests(Decoder([silent]), [request], [first]) == [first]
    quiet_but_read = _read_to(11.5, "r", no_speech=0.9, avg=-0.3)  # Whisper's rule needs both
    assert with_rests(Decoder([quiet_but_read]), [request], [first])[0].text == f"{first.text} {quiet_but_read.text}"


def test_rests_are_decoded_one_after_another_a_bounded_number_of_times() -> None:
    decode = Decoder([_read_to(3.0, f"p{i}_") for i in range(10)])
    [joined] = with_rests(decode, [_request(29.0)], [_read_to(3.0, "p")])
    assert len(decode.asked) == MAX_RESTS
    assert [len(q.audio) / SAMPLE_RATE for q in decode.asked] == [26.0, 23.0, 20.0]  # each from the last word
    assert joined.text == "p0 p1 p2 p0_0 p0_1 p0_2 p1_0 p1_1 p1_2 p2_0 p2_1 p2_2"


def test_only_windows_that_left_speech_out_get_a_rest_and_their_rests_share_one_batch() -> None:
    requests = [_request(20.0), _request(15.0), _request(25.0)]
    results = [_read_to(5.0, "a"), _read_to(14.5, "b"), _read_to(10.0, "c")]
    decode = Decoder([_read_to(15.0, "A"), _read_to(15.0, "C")])
    joined = with_rests(decode, requests, results)
    assert [j.text.split()[-1] for j in joined] == ["A14", "b14", "C14"]
    assert [len(q.audio) / SAMPLE_RATE for q in decode.asked] == [15.0, 15.0]


def test_no_rest_without_word_timings_or_in_audio_that_holds_pauses() -> None:
    request = _request(20.0, words=False)
    result = dataclasses.replace(_read_to(5.0), words=())
    assert with_rests(Decoder([]), [request], [result]) == [result]
    live_pass = _request(20.0, all_speech=False)  # a live utterance's pauses are not speech left out
    assert with_rests(Decoder([]), [live_pass], [_read_to(5.0)]) == [_read_to(5.0)]
