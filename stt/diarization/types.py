"""The diarization request and result types, importable without torch or scikit-learn (options, formats)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DiarizeOptions:
    min_speakers: int = 1
    max_speakers: int | None = None


@dataclasses.dataclass(frozen=True)
class Turn:
    start: float  # seconds
    end: float
    speaker: int
    confidence: float  # cosine similarity of the stretch's voice to its speaker's average voice, 0-1
