"""Spelled numbers written as digits ("nine hundred" -> "900"): Deepgram's ``numerals`` (and ``smart_format``).

text2num (a maintained Rust parser for English, French, Spanish, Portuguese, German, Dutch, Danish and Italian)
does the parsing; this module applies it to a transcript so that its text and its words agree: a run of words
that spells one number becomes one word spanning them ("twenty" "five" -> "25"). Other languages are left as
Whisper wrote them (Whisper already writes most numbers as digits; numerals only changes the rest).
Isolated small numbers stay words ("one of them"), as text2num's default threshold decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from text_to_num import alpha2digit

from stt.engines.base import Segment, Transcript, Word

MAX_RUN_WORDS = 12  # "one million two hundred thirty four thousand five hundred sixty seven" is 11


def digits(text: str, language: str) -> str:
    """``text`` with its spelled numbers in digits; unchanged in a language text2num does not parse."""
    try:
        return alpha2digit(text, language)
    except ValueError:  # "unsupported language"
        return text


def _converts(text: str, language: str) -> bool:
    """Could ``text`` be (the start of) a spelled number? Cheap test with no threshold, to skip most words."""
    try:
        return alpha2digit(text, language, threshold=0) != text
    except ValueError:
        return False


def words_with_digits(words: Sequence[Word], language: str) -> tuple[Word, ...]:
    """Each run of words that spells one number, as one word with its digits, from the run's first start to
    its last end (its probability the lowest of the run's, its speaker the first word's)."""
    out: list[Word] = []
    i = 0
    while i < len(words):
        run = _number_run(words, i, language) if _converts(words[i].word.strip(), language) else None
        if run is None:
            out.append(words[i])
            i += 1
            continue
        end, text = run
        span = words[i:end]
        out.append(dataclasses.replace(span[0], end=span[-1].end, word=" " + text,
                                       probability=min(w.probability for w in span)))
        i = end
    return tuple(out)


def _number_run(words: Sequence[Word], start: int, language: str) -> tuple[int, str] | None:
    """The longest run from ``start`` that converts to one token: (its end index, the digits), or None."""
    best: tuple[int, str] | None = None
    for end in range(start + 1, min(len(words), start + MAX_RUN_WORDS) + 1):
        spoken = " ".join(w.word.strip() for w in words[start:end])
        converted = digits(spoken, language)
        if converted != spoken and len(converted.split()) == 1:
            best = (end, converted)
    return best


def transcript_with_digits(t: Transcript) -> Transcript:
    """The transcript with digits in its text, its segments' texts and their words."""
    if digits(t.text, t.language) == t.text and not any(_any_word_converts(s, t.language) for s in t.segments):
        return t
    segments = tuple(dataclasses.replace(s, text=_segment_text(s, t.language),
                                         words=words_with_digits(s.words, t.language)) for s in t.segments)
    return dataclasses.replace(t, text=digits(t.text, t.language), segments=segments)


def _segment_text(segment: Segment, language: str) -> str:
    # A segment's text keeps Whisper's leading space.
    converted = digits(segment.text.strip(), language)
    return (" " if segment.text.startswith(" ") else "") + converted


def _any_word_converts(segment: Segment, language: str) -> bool:
    spoken = " ".join(w.word.strip() for w in segment.words)
    return bool(spoken) and digits(spoken, language) != spoken
