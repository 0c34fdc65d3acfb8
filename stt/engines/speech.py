"""Where the speech is in an upload: Silero VAD (shipped inside faster-whisper), as its batched pipeline uses it.

Both engines answer ``Engine.find_speech`` with this, so silence is cut out the same way whatever decodes
the speech. Pieces are at most MAX_SPEECH_S long (split at the quietest point Silero finds), so each fits
one 30 s Whisper window.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from stt.audio import SAMPLE_RATE

MAX_SPEECH_S = 30.0
# faster-whisper's BatchedInferencePipeline defaults: pauses of 160 ms are enough to cut at.
OPTIONS = VadOptions(max_speech_duration_s=MAX_SPEECH_S, min_silence_duration_ms=160)


# faster-whisper's search copies the whole audio about twice (padded, then framed with context) and runs
# ONNX on up to 320 s at once: measured here, 700 MB of peak for a 55 min upload, so a 4 h one would need
# GBs. A minute at a time holds a few times that minute whatever the upload's length (the 276 s chapter:
# 38 MB of peak growth against 115 MB at once, in the same time); speech across a minute's edge is joined
# again when it fits one piece.
CHUNK_S = 60.0


def silero_speech(audio: np.ndarray, chunk_s: float = CHUNK_S) -> list[tuple[int, int]]:
    """Blocking (~2 ms per second of audio); call from a scheduler job only."""
    chunk = int(chunk_s * SAMPLE_RATE)
    pieces: list[tuple[int, int]] = []
    for offset in range(0, len(audio), chunk):
        found = get_speech_timestamps(audio[offset:offset + chunk], OPTIONS)
        for start, end in ((offset + int(c["start"]), offset + int(c["end"])) for c in found):
            if pieces and pieces[-1][1] >= start and end - pieces[-1][0] <= MAX_SPEECH_S * SAMPLE_RATE:
                pieces[-1] = (pieces[-1][0], end)  # speech that ran across a stretch's edge: one piece again
            else:
                pieces.append((start, end))
    return pieces


def frame_model():  # type: ignore[no-untyped-def]
    """Silero's per-frame model as faster-whisper wraps it (one ONNX session per process, cached there)."""
    return get_vad_model()
