"""Transcript -> Deepgram's answers: the pre-recorded response with its words, ``utterances`` and ``paragraphs``,
and the metadata the live messages share.

Pure functions, no HTTP, building on the shared helpers of ``stt/http/formats.py``.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Sequence
from typing import Any

from stt.engines.base import Transcript, Word
from stt.http.formats import all_words, clamped_ms, rounded_s
from stt.numerals import transcript_with_digits

UTTERANCE_PAUSE_S = 0.8  # Deepgram's default `utt_split`
PARAGRAPH_PAUSE_S = 1.5  # a pause this long starts a new paragraph even without a speaker change
_PUNCTUATION = re.compile(r"[^\w'-]+")  # what Deepgram's unpunctuated `word` leaves out
_SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")


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
        "duration": rounded_s(seconds), "channels": 1, "models": [uid],
        "model_info": {uid: deepgram_model_info(engine, model)},
    }


def deepgram_json(t: Transcript | Sequence[Transcript], *, request_id: str, sha256: str, engine: str, model: str,
                  punctuate: bool, detected: bool, diarize: bool = False, utterances: bool = False,
                  paragraphs: bool = False, numerals: bool = False) -> dict[str, Any]:
    """Deepgram's pre-recorded answer; several transcripts are the channels of a multichannel request."""
    channels = [t] if isinstance(t, Transcript) else list(t)
    if numerals:
        channels = [transcript_with_digits(c) for c in channels]
    duration = max(c.duration for c in channels)
    results: dict[str, Any] = {"channels": [
        _deepgram_channel(c, punctuate=punctuate, detected=detected, diarize=diarize, paragraphs=paragraphs)
        for c in channels]}
    if utterances:
        found = [u for i, c in enumerate(channels)
                 for u in deepgram_utterances(c, punctuate=punctuate, diarize=diarize, channel=i)]
        results["utterances"] = sorted(found, key=lambda u: (u["start"], u["channel"]))
    metadata = deepgram_metadata(request_id=request_id, sha256=sha256, seconds=duration, engine=engine, model=model)
    metadata["channels"] = len(channels)
    return {"metadata": metadata, "results": results}


def _deepgram_channel(t: Transcript, *, punctuate: bool, detected: bool, diarize: bool,
                      paragraphs: bool) -> dict[str, Any]:
    words = [w for w in all_words(t) if w.word.strip()]
    word_items = [deepgram_word(w, t.duration, diarize) for w in words]
    if punctuate:
        transcript = t.text
    else:
        transcript = " ".join(bare for w in words if (bare := bare_word(w.word)))
    confidence = round(sum(w.probability for w in words) / len(words), 4) if words else 0.0
    alternative: dict[str, Any] = {"transcript": transcript, "confidence": confidence, "words": word_items}
    if paragraphs:
        alternative["paragraphs"] = deepgram_paragraphs(t, diarize=diarize)
    channel: dict[str, Any] = {"alternatives": [alternative]}
    if detected:
        channel["detected_language"] = t.language
        channel["language_confidence"] = round(t.language_probability, 4)
    return channel


def deepgram_word(w: Word, duration: float, diarize: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"word": bare_word(w.word), "start": clamped_ms(w.start, duration) / 1000,
                           "end": clamped_ms(w.end, duration) / 1000, "confidence": round(w.probability, 4)}
    if diarize and w.speaker is not None:
        out["speaker"] = w.speaker
        out["speaker_confidence"] = w.speaker_confidence if w.speaker_confidence is not None else 0.0
    out["punctuated_word"] = w.word.strip()
    return out


def _runs(words: Sequence[Word], pause: float) -> list[list[Word]]:
    """Words grouped until the speaker changes or a pause of at least ``pause`` seconds."""
    runs: list[list[Word]] = []
    for w in words:
        if runs and w.speaker == runs[-1][-1].speaker and w.start - runs[-1][-1].end < pause:
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _spoken_words(t: Transcript) -> list[Word]:
    return [w for w in all_words(t) if w.word.strip()]


def deepgram_utterances(t: Transcript, *, punctuate: bool, diarize: bool, channel: int = 0) -> list[dict[str, Any]]:
    out = []
    for run in _runs(_spoken_words(t), UTTERANCE_PAUSE_S):
        text = " ".join(w.word.strip() if punctuate else bare_word(w.word) for w in run)
        item: dict[str, Any] = {
            "start": clamped_ms(run[0].start, t.duration) / 1000, "end": clamped_ms(run[-1].end, t.duration) / 1000,
            "confidence": round(sum(w.probability for w in run) / len(run), 4), "channel": channel,
            "transcript": text, "words": [deepgram_word(w, t.duration, diarize) for w in run], "id": str(uuid.uuid4())}
        if diarize and run[0].speaker is not None:
            item["speaker"] = run[0].speaker
        out.append(item)
    return out


def _sentences(words: list[Word], duration: float) -> list[dict[str, Any]]:
    sentences: list[list[Word]] = [[]]
    for w in words:
        sentences[-1].append(w)
        if _SENTENCE_END.search(w.word.strip()):
            sentences.append([])
    return [{"text": " ".join(w.word.strip() for w in s), "start": clamped_ms(s[0].start, duration) / 1000,
             "end": clamped_ms(s[-1].end, duration) / 1000} for s in sentences if s]


def deepgram_paragraphs(t: Transcript, *, diarize: bool) -> dict[str, Any]:
    """Deepgram's `paragraphs`: sentences grouped per speaker turn (or long pause), and a transcript with a
    blank line between paragraphs (``Speaker N:`` in front of each when diarized)."""
    paragraphs = []
    texts = []
    for run in _runs(_spoken_words(t), PARAGRAPH_PAUSE_S):
        item: dict[str, Any] = {"sentences": _sentences(run, t.duration), "num_words": len(run),
                                "start": clamped_ms(run[0].start, t.duration) / 1000,
                                "end": clamped_ms(run[-1].end, t.duration) / 1000}
        text = " ".join(w.word.strip() for w in run)
        if diarize and run[0].speaker is not None:
            item["speaker"] = run[0].speaker
            text = f"Speaker {run[0].speaker}: {text}"
        paragraphs.append(item)
        texts.append(text)
    return {"transcript": "\n" + "\n\n".join(texts) + "\n" if texts else "", "paragraphs": paragraphs}
