"""Whether a decoded text repeats itself: Whisper's own test (gzip ratio above 2.4) and a run of words said again
right after itself, which the gzip ratio misses for a short sentence said twice. Engine-neutral: the batched
decoder retries such a window on a full 30 s window, and a choice between two languages' decodings
(stt.inference.language_choice) leaves such a decoding out. Also Whisper's test of a failed decoding
(``fails_whisper_test``: too unlikely, or repeating itself), its cue for decoding a window again."""

from __future__ import annotations

import re

from faster_whisper.transcribe import get_compression_ratio

from stt.engines.base import WindowResult, WindowScores

REPEAT_MIN_WORDS = 4  # a run of this many words said again right after itself is a repeat
MAX_COMPRESSION = 2.4  # above this the text repeats itself (Whisper's own hallucination threshold)
LOG_PROB_THRESHOLD = -1.0  # Whisper's logprob_threshold: a decoding less likely than this on average failed
UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # kana and CJK ideographs


def looks_repeated(result: WindowResult) -> bool:
    """Whisper's own test (gzip ratio above 2.4), or a run of words that comes again right after itself (the gzip
    ratio misses a short sentence said twice). The batched decoder decodes such a window again on a full 30 s
    window, as the engine itself decodes it: a false alarm there costs time, not accuracy."""
    ratio = result.scores.compression_ratio if result.scores else get_compression_ratio(result.text)
    return ratio > MAX_COMPRESSION or repeated_run(result.text) >= REPEAT_MIN_WORDS


def fails_whisper_test(scores: WindowScores) -> bool:
    """Whisper's own test of a decoding (transcribe.py's logprob and compression thresholds): when it fails,
    ``transcribe`` decodes the window again."""
    return scores.avg_logprob < LOG_PROB_THRESHOLD or scores.compression_ratio > MAX_COMPRESSION


def repeated_run(text: str) -> int:
    """Length in words of the longest run of words immediately followed by the same run (0 if none). In scripts
    written without spaces (Chinese, Japanese) a character counts as a word: "第一,二,三,二,三,二,三,…" is one
    space-less word, and was a runaway no other check saw (speechocean762 0461/004610065, answered in Chinese)."""
    words = _units(text)
    best = 0
    for shift in range(1, len(words) // 2 + 1):
        run = 0
        for i in range(len(words) - shift):
            run = run + 1 if words[i] and words[i] == words[i + shift] else 0
            if run >= shift:  # words[i-shift+1 .. i] come again right after themselves
                best = max(best, shift)
                break
    return best


def _units(text: str) -> list[str]:
    """The words of ``text`` (letters and digits only; punctuation alone gives an empty word, which matches
    nothing), each character of a word in a script without spaces on its own."""
    units: list[str] = []
    for word in text.lower().split():
        cleaned = "".join(ch for ch in word if ch.isalnum())
        units += list(cleaned) if UNSPACED.search(cleaned) else [cleaned]
    return units
