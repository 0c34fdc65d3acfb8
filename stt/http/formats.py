"""Transcript -> what several faces render alike: plain text, SRT, WebVTT, segment and word JSON.

Each face's own shapes are in its ``render.py`` and build on these public helpers. Pure functions with no HTTP
in them (and no torch: renderers run on the event loop), so every format is unit-tested against exact text.
Times are clamped to the audio (Whisper's last segment can end a few ms past it) and rounded to milliseconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stt.diarization.assign import split_by_speaker
from stt.engines.base import Segment, Transcript, Word
from stt.engines.languages import language_names

TEXT_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclasses.dataclass(frozen=True)
class Rendered:
    body: str
    content_type: str


def clamped_ms(seconds: float, duration: float) -> int:
    return round(min(max(seconds, 0.0), duration) * 1000)


def clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def diarized(t: Transcript) -> bool:
    return any(s.speaker is not None for s in t.segments)


def speaker_segments(t: Transcript) -> tuple[Segment, ...]:
    """Segments cut at speaker changes when the transcript is diarized, Whisper's own otherwise."""
    return split_by_speaker(t) if diarized(t) else t.segments


def subtitle_cues(t: Transcript, voice: str = "[Speaker {}] ") -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of the segments that have text, with monotonic times within the audio;
    diarized cues are cut at speaker changes and start with ``voice`` filled with the speaker."""
    cues: list[tuple[int, int, str]] = []
    last_end = 0
    for s in speaker_segments(t):
        text = s.text.strip()
        if text and s.speaker is not None:
            text = voice.format(s.speaker) + text
        if not text:
            continue
        start = max(clamped_ms(s.start, t.duration), last_end if cues else 0)
        end = max(clamped_ms(s.end, t.duration), start)
        cues.append((start, end, text))
        last_end = end
    return cues


def to_text(t: Transcript) -> str:
    return t.text + "\n"


def to_srt(t: Transcript) -> str:
    blocks = [f"{i}\n{clock(start, ',')} --> {clock(end, ',')}\n{text}\n"
              for i, (start, end, text) in enumerate(subtitle_cues(t), 1)]
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    blocks = [f"{clock(start, '.')} --> {clock(end, '.')}\n{text}\n"
              for start, end, text in subtitle_cues(t, "<v Speaker {}>")]
    return "\n".join(["WEBVTT\n", *blocks])


def render_text(fmt: str, t: Transcript) -> Rendered:
    """``fmt``: text, srt or vtt."""
    body = {"text": to_text, "srt": to_srt, "vtt": to_vtt}[fmt](t)
    return Rendered(body, TEXT_TYPES[fmt])


def rounded_s(seconds: float) -> float:
    return round(seconds, 3)


def word_json(w: Word, duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {"word": w.word.strip(), "start": clamped_ms(w.start, duration) / 1000,
                           "end": clamped_ms(w.end, duration) / 1000, "probability": round(w.probability, 4)}
    if w.speaker is not None:
        out["speaker"] = w.speaker
    return out


def segment_json(s: Segment, duration: float, with_words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id, "seek": int(s.start * 100),  # in 10 ms mel frames, as Whisper reports it
        "start": clamped_ms(s.start, duration) / 1000, "end": clamped_ms(s.end, duration) / 1000, "text": s.text,
        "tokens": list(s.tokens), "temperature": s.temperature,
    }
    # The decoder's scores; left out where the engine does not know them (never a made-up 0.0).
    for name in ("avg_logprob", "compression_ratio", "no_speech_prob"):
        value = getattr(s, name)
        if value is not None:
            out[name] = round(value, 4)
    if s.speaker is not None:
        out["speaker"] = s.speaker
    if with_words:
        out["words"] = [word_json(w, duration) for w in s.words]
    return out


def all_words(t: Transcript) -> list[Word]:
    return [w for s in t.segments for w in s.words]


def language_name(code: str) -> str:
    """Whisper's code -> the lower-case English name OpenAI reports ("en" -> "english"); unknown codes as is."""
    return language_names().get(code, code)


