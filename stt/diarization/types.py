"""The diarization request and result types, importable without torch or scikit-learn (options, formats)."""

from __future__ import annotations

import dataclasses

# Cosine distance between speaker averages that still counts as one speaker (batch clustering and live
# matching). Tuned on tests/diarization_audio.py: 0.32-0.38 all find its five speakers.
DISTANCE_THRESHOLD = 0.35


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
