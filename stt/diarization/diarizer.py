"""The diarization entry point for the service: models loaded once, one blocking call per transcript."""

from __future__ import annotations

import threading

import numpy as np

from stt.diarization.assign import with_speakers
from stt.diarization.bounds import CHUNK_FRAMES
from stt.diarization.encoder import SpeakerEncoder, load_encoder
from stt.diarization.pipeline import DiarizeOptions, diarize
from stt.engines.base import Transcript
from stt.live.speech_detector import FRAME, SpeechDetector

SAMPLE_RATE = 16000


class Diarizer:
    """Speaker encoder + speech detector. ``label`` blocks: call it from the scheduler's workers only."""

    def __init__(self, encoder: SpeakerEncoder | None = None) -> None:
        self._encoder = encoder or load_encoder()
        self._detector = SpeechDetector()

    @property
    def encoder(self) -> SpeakerEncoder:
        return self._encoder

    def speech(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of each 32 ms frame (none for audio shorter than a frame), CHUNK_FRAMES at a
        time: the detector's buffers stay the size of a chunk whatever the upload's length (the detector
        is given the audio before each chunk, so the result is the same as in one piece)."""
        frames = len(audio) // FRAME
        out = np.zeros(frames, dtype=np.float32)
        for first in range(0, frames, CHUNK_FRAMES):
            count = min(CHUNK_FRAMES, frames - first)
            out[first:first + count] = self._detector.probabilities(audio, first, count)
        return out

    def label(self, transcript: Transcript, audio: np.ndarray, options: DiarizeOptions) -> Transcript:
        probabilities = self.speech(audio)
        turns = diarize(self._encoder, audio, probabilities, FRAME / SAMPLE_RATE, options)
        return with_speakers(transcript, turns)


_lock = threading.Lock()
_shared: Diarizer | None = None


def shared_diarizer() -> Diarizer:
    """Loaded on first use (inside a worker: the sha256 check and torch load stay off the event loop)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = Diarizer()
        return _shared
