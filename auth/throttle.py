"""Slows down token guessing: too many failed attempts from one address within a window get refused."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureThrottle:
    def __init__(self, max_failures: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again; 0 when it may try now."""
        times = self._recent(address)
        if len(times) < self._max:
            return 0.0
        return max(0.0, times[0] + self._window - self._clock())

    def record_failure(self, address: str) -> None:
        self._recent(address).append(self._clock())

    def record_success(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            # Forget idle addresses so the table cannot grow without bound.
            self._failures.pop(address, None)
            times = self._failures.setdefault(address, deque())
        return times
