"""Where the speech is in an upload: Silero VAD (shipped inside faster-whisper), as its batched pipeline uses it.

Both engines answer ``Engine.find_speech`` with this, so silence is cut out the same way whatever decodes
the speech. Pieces are at most MAX_SPEECH_S long (split at the quietest point Silero finds), so each fits
one 30 s Whisper window.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

MAX_SPEECH_S = 30.0
# faster-whisper's BatchedInferencePipeline defaults: pauses of 160 ms are enough to cut at.
OPTIONS = VadOptions(max_speech_duration_s=MAX_SPEECH_S, min_silence_duration_ms=160)


def silero_speech(audio: np.ndarray) -> list[tuple[int, int]]:
    """Blocking (~2 ms per second of audio); call from a scheduler job only."""
    if not len(audio):
        return []
    return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(audio, OPTIONS)]


def frame_model():  # type: ignore[no-untyped-def]
    """Silero's per-frame model as faster-whisper wraps it (one ONNX session per process, cached there)."""
    return get_vad_model()
