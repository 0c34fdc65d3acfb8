"""Whisper's language codes, as faster-whisper lists them (kept here so no other package imports it)."""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES  # Whisper's 100 language codes; no public name for it

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)
