"""Deepgram live API messages (server -> client JSON) for the StreamSession's events."""

from __future__ import annotations

import dataclasses
from typing import Any

from stt.engines.base import Word
from stt.http.faces.deepgram.render import bare_word, deepgram_metadata, deepgram_model_info, deepgram_model_uuid
from stt.live.session import Event, SpeechStarted, Transcribed, UtteranceEnd
from stt.numerals import digits, words_with_digits


def render(event: Event, *, request_id: str, engine: str, model_name: str, punctuate: bool,
           channel: tuple[int, int] = (0, 1), numerals: str | None = None) -> dict[str, Any]:
    """``channel``: (this channel, channel count), Deepgram's ``channel_index`` ([0, 1] for mono);
    ``numerals``: the language to write spelled numbers in as digits (None: as Whisper wrote them)."""
    if isinstance(event, SpeechStarted):
        return {"type": "SpeechStarted", "channel": [channel[0]], "timestamp": event.timestamp}
    if isinstance(event, UtteranceEnd):
        return {"type": "UtteranceEnd", "channel": list(channel), "last_word_end": event.last_word_end}
    if numerals:
        event = dataclasses.replace(event, text=digits(event.text, numerals),
                                    words=words_with_digits(event.words, numerals))
    return _results(event, request_id, engine, model_name, punctuate, channel)


def _results(event: Transcribed, request_id: str, engine: str, model_name: str, punctuate: bool,
             channel: tuple[int, int]) -> dict[str, Any]:
    words = [_word(w, punctuate) for w in event.words]
    transcript = event.text if punctuate else " ".join(w["word"] for w in words)
    confidence = sum(w.probability for w in event.words) / len(event.words) if event.words else 0.0
    return {
        "type": "Results",
        "channel_index": list(channel),
        "duration": round(event.duration, 3),
        "start": event.start,
        "is_final": event.is_final,
        "speech_final": event.speech_final,
        "from_finalize": event.from_finalize,
        "channel": {"alternatives": [{"transcript": transcript if transcript.strip() else "",
                                      "confidence": round(confidence, 4), "words": words}]},
        "metadata": {"request_id": request_id, "model_info": deepgram_model_info(engine, model_name),
                     "model_uuid": deepgram_model_uuid(model_name)},
    }


def _word(word: Word, punctuate: bool) -> dict[str, Any]:
    spoken = word.word.strip()
    plain = bare_word(spoken) or spoken.lower()
    out: dict[str, Any] = {"word": plain, "start": round(word.start, 3), "end": round(word.end, 3),
                           "confidence": round(word.probability, 4)}
    if punctuate:
        out["punctuated_word"] = spoken
    if word.speaker is not None:
        out["speaker"] = word.speaker
        out["speaker_confidence"] = word.speaker_confidence
    return out


def metadata(*, request_id: str, sha256: str, seconds: float, engine: str, model_name: str,
             channels: int = 1) -> dict[str, Any]:
    body = deepgram_metadata(request_id=request_id, sha256=sha256, seconds=seconds, engine=engine,
                             model=model_name)
    return {"type": "Metadata", **body, "channels": channels}


def error(variant: str, description: str) -> dict[str, Any]:
    """Deepgram's error message, sent before the close frame that ends a stream for it (the shape its SDKs read:
    ``variant`` is Deepgram's code, e.g. DATA-0000 for audio that cannot be decoded)."""
    return {"type": "Error", "variant": variant, "description": description, "message": description}
