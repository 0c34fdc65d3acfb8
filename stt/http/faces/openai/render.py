"""Transcript -> OpenAI's answers: verbose_json, and diarized_json with speakers (text, SRT and VTT are the
shared renderers of ``stt/http/formats.py``)."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from stt.engines.base import Transcript
from stt.http.formats import (all_words, clamped_ms, language_name, rounded_s, segment_json, speaker_segments,
                              word_json)


def verbose_json(t: Transcript, task: str, *, segments: bool = True, words: bool = False) -> dict[str, Any]:
    """OpenAI's verbose_json: task, language (its English name, as OpenAI's), duration, text, segments
    (numbered from 0, as OpenAI's) and (when asked) words."""
    out: dict[str, Any] = {"task": task, "language": language_name(t.language), "duration": rounded_s(t.duration),
                           "text": t.text}
    if segments:
        out["segments"] = [segment_json(dataclasses.replace(s, id=i), t.duration, with_words=False)
                           for i, s in enumerate(speaker_segments(t))]
    if words:
        out["words"] = [word_json(w, t.duration) for w in all_words(t)]
    out["usage"] = {"type": "duration", "seconds": rounded_s(t.duration)}
    return out


def speaker_letter(speaker: int | None) -> str:
    """OpenAI labels speakers A, B, ..., Z, then AA, AB, ..."""
    n = speaker or 0
    letters = string.ascii_uppercase
    return letters[n] if n < 26 else letters[n // 26 - 1] + letters[n % 26]


def openai_diarized_json(t: Transcript) -> dict[str, Any]:
    """The shape of OpenAI's `gpt-4o-transcribe-diarize` answer: one segment per speaker turn."""
    segments = [{"type": "transcript.text.segment", "id": f"seg_{i}",
                 "start": clamped_ms(s.start, t.duration) / 1000, "end": clamped_ms(s.end, t.duration) / 1000,
                 "text": s.text.strip(), "speaker": speaker_letter(s.speaker)}
                for i, s in enumerate(speaker_segments(t)) if s.text.strip()]
    return {"task": "transcribe", "duration": rounded_s(t.duration), "text": t.text, "segments": segments,
            "usage": {"type": "duration", "seconds": rounded_s(t.duration)}}
