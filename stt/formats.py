"""Transcript -> the wire formats: plain text, SRT, WebVTT, verbose JSON, and the OpenAI and Deepgram shapes.

Pure functions with no HTTP in them, so every format is unit-tested against exact text. Times are clamped to
the audio (Whisper's last segment can end a few ms past it) and rounded to milliseconds.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import uuid
from collections.abc import Sequence
from typing import Any

from stt.engines.base import Segment, Transcript, Word

TEXT_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}
_PUNCTUATION = re.compile(r"[^\w'-]+")  # what Deepgram's unpunctuated `word` leaves out


@dataclasses.dataclass(frozen=True)
class Rendered:
    body: str
    content_type: str


def _ms(seconds: float, duration: float) -> int:
    return round(min(max(seconds, 0.0), duration) * 1000)


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def diarized(t: Transcript) -> bool:
    return any(s.speaker is not None for s in t.segments)


def speaker_segments(t: Transcript) -> tuple[Segment, ...]:
    """Segments cut at speaker changes when the transcript is diarized, Whisper's own otherwise."""
    from stt.diarization.assign import split_by_speaker  # formats stay importable without torch loaded first

    return split_by_speaker(t) if diarized(t) else t.segments


def _cues(t: Transcript, voice: str = "[Speaker {}] ") -> list[tuple[int, int, str]]:
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
        start = max(_ms(s.start, t.duration), last_end if cues else 0)
        end = max(_ms(s.end, t.duration), start)
        cues.append((start, end, text))
        last_end = end
    return cues


def to_text(t: Transcript) -> str:
    return t.text + "\n"


def to_srt(t: Transcript) -> str:
    blocks = [f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n"
              for i, (start, end, text) in enumerate(_cues(t), 1)]
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    blocks = [f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n"
              for start, end, text in _cues(t, "<v Speaker {}>")]
    return "\n".join(["WEBVTT\n", *blocks])


def render_text(fmt: str, t: Transcript) -> Rendered:
    """``fmt``: text, srt or vtt."""
    body = {"text": to_text, "srt": to_srt, "vtt": to_vtt}[fmt](t)
    return Rendered(body, TEXT_TYPES[fmt])


def _r(seconds: float) -> float:
    return round(seconds, 3)


def word_json(w: Word, duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {"word": w.word.strip(), "start": _ms(w.start, duration) / 1000,
                           "end": _ms(w.end, duration) / 1000, "probability": round(w.probability, 4)}
    if w.speaker is not None:
        out["speaker"] = w.speaker
    return out


def segment_json(s: Segment, duration: float, with_words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id, "seek": int(s.start * 100),  # in 10 ms mel frames, as Whisper reports it
        "start": _ms(s.start, duration) / 1000, "end": _ms(s.end, duration) / 1000, "text": s.text,
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


def verbose_json(t: Transcript, task: str, *, segments: bool = True, words: bool = False) -> dict[str, Any]:
    """OpenAI's verbose_json: task, language (its English name, as OpenAI's), duration, text, segments
    (numbered from 0, as OpenAI's) and (when asked) words."""
    out: dict[str, Any] = {"task": task, "language": language_name(t.language), "duration": _r(t.duration),
                           "text": t.text}
    if segments:
        out["segments"] = [segment_json(dataclasses.replace(s, id=i), t.duration, with_words=False)
                           for i, s in enumerate(speaker_segments(t))]
    if words:
        out["words"] = [word_json(w, t.duration) for w in all_words(t)]
    out["usage"] = {"type": "duration", "seconds": _r(t.duration)}
    return out


def language_name(code: str) -> str:
    """Whisper's code -> the lower-case English name OpenAI reports ("en" -> "english"); unknown codes as is."""
    from whisper.tokenizer import LANGUAGES  # the table Whisper's own CLI prints names from

    return LANGUAGES.get(code, code)


def native_json(t: Transcript, proc_duration: float) -> dict[str, Any]:
    return {"text": t.text, "proc_duration": proc_duration, "status": "success", "language": t.language,
            "duration": _r(t.duration)}


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


# --- Deepgram's pre-recorded response ----------------------------------------------------------------------

_MODEL_NAMESPACE = uuid.UUID("6f1d2c1e-6b1e-4a34-9a55-0b7f0a7c8e11")  # stable Deepgram model ids per model name


def bare_word(word: str) -> str:
    """Deepgram's `word`: lower case, no punctuation (``punctuated_word`` keeps Whisper's form). Hyphens stay
    inside a word ("well-known") but not at its ends, where Whisper leaves them when it splits a compound
    ("flour" + "-fattened")."""
    return _PUNCTUATION.sub("", word).strip("-").lower()


def deepgram_model_uuid(model_name: str) -> str:
    """The same id on the pre-recorded and the live face, for the same model."""
    return str(uuid.uuid5(_MODEL_NAMESPACE, model_name))


def deepgram_model_info(engine: str, model_name: str) -> dict[str, str]:
    return {"name": model_name, "version": "whisper", "arch": engine}


def deepgram_metadata(*, request_id: str, sha256: str, seconds: float, engine: str, model: str) -> dict[str, Any]:
    """The `metadata` of a pre-recorded answer, and the body of the live Metadata message."""
    uid = deepgram_model_uuid(model)
    return {
        "transaction_key": "deprecated", "request_id": request_id, "sha256": sha256,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"),
        "duration": _r(seconds), "channels": 1, "models": [uid],
        "model_info": {uid: deepgram_model_info(engine, model)},
    }


def deepgram_json(t: Transcript | Sequence[Transcript], *, request_id: str, sha256: str, engine: str, model: str,
                  punctuate: bool, detected: bool, diarize: bool = False, utterances: bool = False,
                  paragraphs: bool = False) -> dict[str, Any]:
    """Deepgram's pre-recorded answer; several transcripts are the channels of a multichannel request."""
    from stt import speaker_formats  # it builds on this module's helpers

    channels = [t] if isinstance(t, Transcript) else list(t)
    duration = max(c.duration for c in channels)
    results: dict[str, Any] = {"channels": [
        _deepgram_channel(c, punctuate=punctuate, detected=detected, diarize=diarize, paragraphs=paragraphs)
        for c in channels]}
    if utterances:
        found = [u for i, c in enumerate(channels)
                 for u in speaker_formats.deepgram_utterances(c, punctuate=punctuate, diarize=diarize, channel=i)]
        results["utterances"] = sorted(found, key=lambda u: (u["start"], u["channel"]))
    metadata = deepgram_metadata(request_id=request_id, sha256=sha256, seconds=duration, engine=engine, model=model)
    metadata["channels"] = len(channels)
    return {"metadata": metadata, "results": results}


def _deepgram_channel(t: Transcript, *, punctuate: bool, detected: bool, diarize: bool,
                      paragraphs: bool) -> dict[str, Any]:
    from stt import speaker_formats

    words = [w for w in all_words(t) if w.word.strip()]
    word_items = [speaker_formats.deepgram_word(w, t.duration, diarize) for w in words]
    if punctuate:
        transcript = t.text
    else:
        transcript = " ".join(bare for w in words if (bare := bare_word(w.word)))
    confidence = round(sum(w.probability for w in words) / len(words), 4) if words else 0.0
    alternative: dict[str, Any] = {"transcript": transcript, "confidence": confidence, "words": word_items}
    if paragraphs:
        alternative["paragraphs"] = speaker_formats.deepgram_paragraphs(t, diarize=diarize)
    channel: dict[str, Any] = {"alternatives": [alternative]}
    if detected:
        channel["detected_language"] = t.language
        channel["language_confidence"] = round(t.language_probability, 4)
    return channel
