"""Diarized transcripts -> OpenAI's ``diarized_json`` and Deepgram's ``utterances`` and ``paragraphs``.

Pure functions, no HTTP, like ``stt/formats.py`` (whose helpers they reuse).
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Sequence
from typing import Any

from stt.engines.base import Transcript, Word
from stt.formats import _ms, _r, all_words, bare_word, speaker_segments

UTTERANCE_PAUSE_S = 0.8  # Deepgram's default `utt_split`
PARAGRAPH_PAUSE_S = 1.5  # a pause this long starts a new paragraph even without a speaker change
_SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")


def speaker_letter(speaker: int | None) -> str:
    """OpenAI labels speakers A, B, ..., Z, then AA, AB, ..., ZZ, AAA, ... (bijective base 26: any count)."""
    n = max(speaker or 0, 0) + 1
    label = ""
    while n:
        n, digit = divmod(n - 1, 26)
        label = string.ascii_uppercase[digit] + label
    return label


def openai_diarized_json(t: Transcript) -> dict[str, Any]:
    """The shape of OpenAI's `gpt-4o-transcribe-diarize` answer: one segment per speaker turn."""
    segments = [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": _ms(s.start, t.duration) / 1000,
                 "end": _ms(s.end, t.duration) / 1000, "text": s.text.strip(), "speaker": speaker_letter(s.speaker)}
                for i, s in enumerate(speaker_segments(t)) if s.text.strip()]
    return {"task": "transcribe", "duration": _r(t.duration), "text": t.text, "segments": segments,
            "usage": {"type": "duration", "seconds": _r(t.duration)}}


def deepgram_word(w: Word, duration: float, diarize: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"word": bare_word(w.word), "start": _ms(w.start, duration) / 1000,
                           "end": _ms(w.end, duration) / 1000, "confidence": round(w.probability, 4)}
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
            "start": _ms(run[0].start, t.duration) / 1000, "end": _ms(run[-1].end, t.duration) / 1000,
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
    return [{"text": " ".join(w.word.strip() for w in s), "start": _ms(s[0].start, duration) / 1000,
             "end": _ms(s[-1].end, duration) / 1000} for s in sentences if s]


def deepgram_paragraphs(t: Transcript, *, diarize: bool) -> dict[str, Any]:
    """Deepgram's `paragraphs`: sentences grouped per speaker turn (or long pause), and a transcript with a
    blank line between paragraphs (``Speaker N:`` in front of each when diarized)."""
    paragraphs = []
    texts = []
    for run in _runs(_spoken_words(t), PARAGRAPH_PAUSE_S):
        item: dict[str, Any] = {"sentences": _sentences(run, t.duration), "num_words": len(run),
                                "start": _ms(run[0].start, t.duration) / 1000,
                                "end": _ms(run[-1].end, t.duration) / 1000}
        text = " ".join(w.word.strip() for w in run)
        if diarize and run[0].speaker is not None:
            item["speaker"] = run[0].speaker
            text = f"Speaker {run[0].speaker}: {text}"
        paragraphs.append(item)
        texts.append(text)
    return {"transcript": "\n" + "\n\n".join(texts) + "\n" if texts else "", "paragraphs": paragraphs}
