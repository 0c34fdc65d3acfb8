"""Speaker turns -> speakers on a transcript's words and segments, and segments split where the speaker changes.

Pure numpy (no torch, no scikit-learn): the renderers use ``split_by_speaker`` on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np

from stt.diarization.types import Turn
from stt.engines.base import Segment, Transcript, Word, join_segments


def with_speakers(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """Every word gets its turn's speaker, every segment the speaker of most of its words."""
    words = [w for s in transcript.segments for w in s.words]
    found = iter(word_turns(turns, [(w.start, w.end) for w in words]))
    segments = []
    for s in transcript.segments:
        spoken = tuple(_spoken(w, next(found)) for w in s.words)
        segments.append(dataclasses.replace(s, words=spoken, speaker=_majority(spoken, s, turns)))
    return dataclasses.replace(transcript, segments=tuple(segments))


def word_turns(turns: Sequence[Turn], words: Sequence[tuple[float, float]]) -> list[Turn | None]:
    """Each word's speaker: the turn it overlaps most, else the nearest one (a word in a detector's gap)."""
    if not turns:
        return [None] * len(words)
    starts = np.array([t.start for t in turns])
    ends = np.array([t.end for t in turns])
    out: list[Turn | None] = []
    for start, end in words:
        overlap = np.minimum(ends, end) - np.maximum(starts, start)
        distance = np.maximum(starts - end, start - ends)
        best = int(np.argmax(overlap)) if overlap.max() > 0 else int(np.argmin(distance))
        out.append(turns[best])
    return out


def _spoken(word: Word, turn: Turn | None) -> Word:
    if turn is None:
        return word
    return dataclasses.replace(word, speaker=turn.speaker, speaker_confidence=turn.confidence)


def _majority(words: Sequence[Word], segment: Segment, turns: Sequence[Turn]) -> int | None:
    counts = Counter(w.speaker for w in words if w.speaker is not None)
    if counts:
        return counts.most_common(1)[0][0]
    # A segment without word times: the speaker of the turn at its middle.
    found = word_turns(turns, [(segment.start, segment.end)])[0]
    return found.speaker if found else None


def split_by_speaker(transcript: Transcript) -> tuple[Segment, ...]:
    """Segments cut where the speaker changes between words (a Whisper segment can span a turn change),
    numbered from 0. Segments without words are kept whole."""
    out: list[Segment] = []
    for s in transcript.segments:
        if not s.words:
            out.append(dataclasses.replace(s, id=len(out)))
            continue
        run: list[Word] = []
        for w in s.words:
            if run and w.speaker != run[-1].speaker:
                out.append(_piece(s, run, len(out)))
                run = []
            run.append(w)
        out.append(_piece(s, run, len(out)))
    return tuple(out)


def _piece(segment: Segment, words: list[Word], index: int) -> Segment:
    text = "".join(w.word for w in words)
    whole = len(words) == len(segment.words)
    return dataclasses.replace(segment, id=index, start=words[0].start if not whole else segment.start,
                               end=words[-1].end if not whole else segment.end,
                               text=segment.text if whole else text, words=tuple(words),
                               speaker=words[0].speaker, tokens=segment.tokens if whole else ())


def turns_text(segments: Sequence[Segment]) -> str:
    return join_segments(list(segments))
