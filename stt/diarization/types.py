"""The diarization request and result types, importable without torch or scikit-learn (options, formats)."""

from __future__ import annotations

import dataclasses

# Average-linkage cosine distance between groups of 2 s stretches that still counts as one speaker (batch and
# live clustering; stt/diarization/clustering.py). Chosen on all the shared sets together: the five-speaker
# joins need >= 0.38 with 2 s stretches (one voice over many turns is not cut), and 0.38-0.40 change no other set.
DISTANCE_THRESHOLD = 0.38


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
