"""Transcript -> the native API's answers: json, verbose_json, and /detect-language's languages."""

from __future__ import annotations

from typing import Any

from stt.engines.base import Transcript
from stt.http.formats import all_words, rounded_s, segment_json, speaker_segments, word_json


def native_json(t: Transcript, proc_duration: float) -> dict[str, Any]:
    return {"text": t.text, "proc_duration": proc_duration, "status": "success", "language": t.language,
            "duration": rounded_s(t.duration)}


def native_verbose_json(t: Transcript, task: str, proc_duration: float, words: bool) -> dict[str, Any]:
    out = native_json(t, proc_duration)
    out["language_probability"] = round(t.language_probability, 4)
    out["task"] = task
    out["segments"] = [segment_json(s, t.duration, with_words=words) for s in speaker_segments(t)]
    if words:
        out["words"] = [word_json(w, t.duration) for w in all_words(t)]
    return out


def languages_json(probabilities: list[tuple[str, float]], top: int) -> dict[str, Any]:
    best, best_p = probabilities[0]
    return {"status": "success", "language": best, "probability": round(best_p, 4),
            "languages": [{"language": lang, "probability": round(p, 4)} for lang, p in probabilities[:top]]}
