"""Speech probability per 32 ms frame from Silero VAD (the model shipped inside faster-whisper), fed in pieces.

Silero's ONNX graph as faster-whisper wraps it starts from a zero state on every call, so each call gets
LOOKBACK frames of audio that came before the new frames and their probabilities are thrown away: the new
frames are scored as if the audio had been given in one piece (checked in tests/live/test_streaming.py).
"""

from __future__ import annotations

import numpy as np
from stt.engines.speech import frame_model

FRAME = 512  # samples at 16 kHz: Silero's window
LOOKBACK = 16  # frames of earlier audio given with each call (0.5 s)


class SpeechDetector:
    def __init__(self) -> None:
        self._model = frame_model()

    def probabilities(self, audio: np.ndarray, first: int, count: int) -> np.ndarray:
        """Probabilities of frames ``first .. first+count`` of ``audio`` (frame indices from its start)."""
        begin = max(0, first - LOOKBACK)
        chunk = audio[begin * FRAME:(first + count) * FRAME]
        return np.asarray(self._model(np.ascontiguousarray(chunk, dtype=np.float32))).reshape(-1)[first - begin:]
