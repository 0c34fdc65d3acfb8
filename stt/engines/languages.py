"""Whisper's language codes, as faster-whisper lists them (kept here so no other package imports it)."""

from __future__ import annotations

from collections.abc import Sequence

from faster_whisper.tokenizer import _LANGUAGE_CODES  # Whisper's 100 language codes; no public name for it

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)


def choose_language(ranked: Sequence[tuple[str, float]], allowed: Sequence[str] = ()) -> tuple[str, float]:
    """The most likely language of ``ranked`` ((code, probability), most likely first), among ``allowed``
    when given (a client's or the server's list): detection never answers outside it. The probability is
    then the share among the allowed languages."""
    if not allowed:
        return ranked[0][0], float(ranked[0][1])
    kept = [(lang, float(p)) for lang, p in ranked if lang in allowed] or [(allowed[0], 0.0)]
    total = sum(p for _, p in kept)
    return kept[0][0], kept[0][1] / total if total > 0 else 0.0


def allowed_languages(requested: Sequence[str], server: Sequence[str]) -> tuple[str, ...]:
    """A request's list of languages narrowed to the server's (``asr.languages``); either may be empty (any)."""
    if not server:
        return tuple(requested)
    return tuple(lang for lang in requested if lang in server) or tuple(server)
