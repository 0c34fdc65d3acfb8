"""Fault injection for tests: wrap any engine (the real model included) and make its next calls raise.

Used to prove that an engine failure becomes a 500 JSON answer and that the worker thread, the model and the
server stay usable for the next request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowRequest, WindowResult


class InjectedFault(RuntimeError):
    """The failure a FaultyEngine raises when armed."""


class FaultyEngine:
    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_name = inner.model_name
        self.multilingual = inner.multilingual
        self.parallel_calls = inner.parallel_calls
        self.calls = 0
        self._pending = 0
        self._lock = threading.Lock()  # calls come from the scheduler's worker threads

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` calls raise InjectedFault instead of running the model."""
        with self._lock:
            self._pending = count

    def _enter(self) -> None:
        with self._lock:
            self.calls += 1
            fail = self._pending > 0
            self._pending -= fail
        if fail:
            raise InjectedFault("injected engine fault")

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Transcript:
        self._enter()
        return self.inner.transcribe(audio, options)

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self._enter()
        return self.inner.decode_windows(requests)

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return self.inner.find_speech(audio)  # faults are injected where the model decodes

    def detect_language(self, audio: np.ndarray) -> list[tuple[str, float]]:
        self._enter()
        return self.inner.detect_language(audio)

    def close(self) -> None:
        self.inner.close()
